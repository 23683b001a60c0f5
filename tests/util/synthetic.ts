/**
 * Synthetic MNIST-shaped data for the tests: a split in memory, a small data folder for the
 * command-line scripts, and a way to run a script in its own process.
 * @module
 */

import { join } from "node:path";
import { writeSafetensorsFile } from "../../lib/io/files.ts";
import { random } from "../../lib/random.ts";
import { splitSha256 } from "../../lib/io/mnist.ts";
import { IMAGE_PIXELS } from "../../lib/data_gpu.ts";
import type { Split } from "../../lib/train.ts";

/** Digit-like images: mostly black, with bright strokes, like MNIST; random labels. */
export function syntheticSplit(count: number, seed: number): Split {
  const rng = random(seed);
  const images = new Uint8Array(count * IMAGE_PIXELS);
  for (let i = 0; i < images.length; i++) images[i] = rng.next() < 0.2 ? rng.int(256) : 0;
  const labels = Uint8Array.from({ length: count }, () => rng.int(10));
  return { images, labels, count };
}

/**
 * A small MNIST-shaped data folder: digit-like noise, so training runs but stays fast. Each
 * file records the SHA-256 of its IDX sources, as download's do.
 */
export async function syntheticData(dir: string, counts: { train: number; test: number }) {
  const rng = random(7);
  for (const [split, count] of Object.entries(counts)) {
    const images = new Uint8Array(count * 784);
    const labels = Uint8Array.from({ length: count }, () => rng.int(10));
    // Each class lights its own band of rows, so there is something to learn.
    for (let i = 0; i < count; i++) {
      for (let p = 0; p < 784; p++) {
        const band = Math.floor(p / 28 / 2.8) === labels[i];
        images[i * 784 + p] = band && rng.next() < 0.7
          ? 200 + rng.int(56)
          : rng.next() < 0.05
          ? rng.int(256)
          : 0;
      }
    }
    await Deno.mkdir(join(dir, "mnist"), { recursive: true });
    await writeSafetensorsFile(join(dir, "mnist", `${split}.safetensors`), {
      images: { dtype: "U8", shape: [count, 28, 28], data: images },
      labels: { dtype: "U8", shape: [count], data: labels },
    }, {
      source: "synthetic test data",
      split,
      sha256: JSON.stringify(
        await splitSha256({ images, labels, count }, split as "train" | "test"),
      ),
    });
  }
}

/** The path of scripts/<name> (or of another folder's script: "../bench/step_profile.ts"). */
export function scriptPath(name: string): string {
  return new URL(`../../scripts/${name}`, import.meta.url).pathname;
}

/** The permissions the tasks grant (write anywhere, for temp dirs). */
export const SCRIPT_PERMISSIONS = ["--allow-read", "--allow-write", "--allow-env", "--allow-net"];

/** Runs scripts/<name> with the tasks' permissions, in `cwd` (default: the test's). */
export async function runScript(
  name: string,
  args: string[],
  options: { cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...SCRIPT_PERMISSIONS, scriptPath(name), ...args],
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

/**
 * A temp folder with synthetic data in `<dir>/data` and a 1-epoch run of train in `<dir>/run`
 * (extra train options in `args`); throws with train's stderr when it fails.
 */
export async function trainedRun(
  counts: { train: number; test: number },
  args: string[] = [],
): Promise<{ dir: string; data: string; run: string }> {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "data"), run = join(dir, "run");
  await syntheticData(data, counts);
  const trained = await runScript("train.ts", [
    "--data",
    data,
    "--epochs",
    "1",
    "--quiet",
    "--out",
    run,
    ...args,
  ]);
  if (trained.code !== 0) throw new Error(`train failed: ${trained.stderr}`);
  return { dir, data, run };
}
