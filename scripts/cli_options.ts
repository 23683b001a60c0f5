/**
 * Parsers for numeric command-line options, shared by the scripts (and bench tools) so that
 * every tool rejects a bad value with the same clear message.
 * @module
 */

import { InvalidArgumentError } from "@commander-js/extra-typings";

/**
 * A commander parser for a whole number >= 1; `name` is the option, for the message.
 *
 * @example
 * ```ts
 * program.option("--epochs <n>", "epochs", positiveInt("--epochs"), 2);
 * ```
 */
export function positiveInt(name: string): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${name} must be a whole number >= 1, got "${value}".`);
    }
    return n;
  };
}

/** A commander parser for a whole number >= 0 (0, or what {@linkcode positiveInt} takes). */
export function nonNegativeInt(name: string): (value: string) => number {
  return (value: string) => value.trim() === "0" ? 0 : positiveInt(name)(value);
}
