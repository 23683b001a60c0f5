/**
 * The command-line options every script shares, defined once: the numeric parsers (one family,
 * one wording of errors) and the options `--device`, `--dataset`, `--data` and `--kernels`.
 * @module
 */

import { InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { DATASETS } from "../lib/io/mnist.ts";
import type { DeviceChoice, Runtime } from "../lib/runtime.ts";
import { createRuntime, type KernelChoice } from "../lib/device.ts";

/**
 * A commander parser for a whole number >= `min`; `name` is the option, for the message.
 *
 * @example
 * ```ts
 * import { wholeNumber } from "./cli_options.ts";
 * wholeNumber("--epochs", 1)("3"); // 3
 * ```
 */
export function wholeNumber(name: string, min: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got "${value}".`);
    }
    return n;
  };
}

/** A whole number >= 1 (see {@linkcode wholeNumber}). */
export function positiveInt(name: string): (value: string) => number {
  return wholeNumber(name, 1);
}

/** A whole number >= 0 (see {@linkcode wholeNumber}). */
export function nonNegativeInt(name: string): (value: string) => number {
  return wholeNumber(name, 0);
}

/**
 * A commander parser for a finite number above `min` (`exclusive`) or at least `min`.
 *
 * @example
 * ```ts
 * import { realNumber } from "./cli_options.ts";
 * realNumber("--lr", { min: 0, exclusive: true })("1e-3"); // 0.001
 * ```
 */
export function realNumber(
  name: string,
  options: { min: number; exclusive?: boolean },
): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    const low = options.exclusive ? n <= options.min : n < options.min;
    if (value.trim() === "" || !Number.isFinite(n) || low) {
      const bound = options.exclusive ? `> ${options.min}` : `>= ${options.min}`;
      throw new InvalidArgumentError(`${name} must be a number ${bound}, got "${value}".`);
    }
    return n;
  };
}

/**
 * A commander parser for a comma-separated list of whole numbers >= 1 (`--batches 32,64`).
 *
 * @example
 * ```ts
 * import { positiveIntList } from "./cli_options.ts";
 * positiveIntList("--batches")("32,64"); // [32, 64]
 * ```
 */
export function positiveIntList(name: string): (value: string) => number[] {
  return (value: string) => {
    const items = splitList(value);
    if (items.length === 0 || items.some((s) => !/^[1-9]\d*$/.test(s))) {
      throw new InvalidArgumentError(
        `${name} must be a comma-separated list of whole numbers >= 1, got "${value}".`,
      );
    }
    return items.map(Number);
  };
}

/**
 * A commander parser for a comma-separated list of `choices` (`--models lenet,lenet5`).
 *
 * @example
 * ```ts
 * import { choiceList } from "./cli_options.ts";
 * choiceList("--kernels", ["plain", "cpu"] as const)("cpu"); // ["cpu"]
 * ```
 */
export function choiceList<T extends string>(
  name: string,
  choices: readonly T[],
): (value: string) => T[] {
  return (value: string) => {
    const items = splitList(value);
    const bad = items.find((s) => !(choices as readonly string[]).includes(s));
    if (items.length === 0 || bad !== undefined) {
      throw new InvalidArgumentError(
        `${name} must be a comma-separated list of ${choices.join(", ")}, got "${value}".`,
      );
    }
    return items as T[];
  };
}

function splitList(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** The adapter: `--device auto|gpu|cpu`. */
export function deviceOption() {
  return new Option("--device <kind>", "auto: a GPU if there is one; gpu: insist; cpu: fallback")
    .choices(["auto", "gpu", "cpu"] as const).default("auto" as const);
}

/** The kernel tier: `--kernels auto|plain|cpu`. */
export function kernelsOption() {
  return new Option(
    "--kernels <tier>",
    "auto: the CPU-tuned kernels on a software adapter, else plain; or force plain or cpu",
  ).choices(["auto", "plain", "cpu"] as const).default("auto" as const);
}

/** `--dataset mnist|fashion-mnist`; without a default (evaluate and embed take the run's). */
export function datasetOption(description = "dataset (default: the run's)") {
  return new Option("--dataset <name>", description).choices(DATASETS);
}

/** `--data <dir>`: the folder of the data files. */
export function dataOption(description = "folder of the data files") {
  return new Option("--data <dir>", description).default("data");
}

/**
 * The runtime `--device` and `--kernels` ask for, and the name of the kernel tier it runs
 * (recorded by train, printed by evaluate and embed).
 */
export async function openRuntime(
  device: DeviceChoice,
  kernels: KernelChoice,
): Promise<{ rt: Runtime; kernels: string }> {
  const rt = await createRuntime(device, { kernels });
  return { rt, kernels: rt.tier.name };
}
