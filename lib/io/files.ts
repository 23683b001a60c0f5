/**
 * Deno file I/O for the scripts: atomic writes (temporary file, then rename, so a crash never
 * leaves half a file), reads whose errors name the file, and safetensors files.
 *
 * @module
 */

import {
  decodeSafetensors,
  encodeSafetensors,
  type Safetensors,
  type StoredTensor,
} from "./safetensors.ts";

/**
 * Writes `data` to `path` through a temporary file in the same directory and a rename.
 * On failure the temporary file is removed and the error names `path`.
 *
 * @example
 * ```ts
 * import { join } from "node:path";
 * import { writeFileAtomic } from "./files.ts";
 *
 * const run = await Deno.makeTempDir();
 * await writeFileAtomic(join(run, "metrics.json"), JSON.stringify({ epoch: 1 }));
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(temp, data);
    else await Deno.writeFile(temp, data);
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw new Error(`${path}: cannot write (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Reads a whole file; a missing file gives an error that names it.
 *
 * @example
 * ```ts
 * import { readFileBytes } from "./files.ts";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array([1, 2, 3]));
 * const bytes = await readFileBytes(path); // Uint8Array [1, 2, 3]
 * ```
 */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${path}: file not found`);
    throw new Error(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
}

/**
 * True when `path` exists (file or directory).
 *
 * @example
 * ```ts
 * import { join } from "node:path";
 * import { exists } from "./files.ts";
 *
 * const data = await Deno.makeTempDir();
 * if (!await exists(join(data, "mnist", "train.safetensors"))) console.log("no data yet");
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw new Error(`${path}: cannot check (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Reads and validates a safetensors file; errors name the file.
 *
 * @example
 * ```ts
 * import { join } from "node:path";
 * import { readSafetensorsFile, writeSafetensorsFile } from "./files.ts";
 *
 * const path = join(await Deno.makeTempDir(), "model.safetensors");
 * await writeSafetensorsFile(path, { w: { dtype: "F32", shape: [1], data: new Float32Array([7]) } });
 * const { tensors, metadata } = await readSafetensorsFile(path);
 * ```
 */
export async function readSafetensorsFile(path: string): Promise<Safetensors> {
  return decodeSafetensors(await readFileBytes(path), { name: path });
}

/**
 * Writes tensors (in the given order) and string metadata to a safetensors file, atomically.
 *
 * @example
 * ```ts
 * import { join } from "node:path";
 * import { writeSafetensorsFile } from "./files.ts";
 *
 * await writeSafetensorsFile(join(await Deno.makeTempDir(), "out.safetensors"), {
 *   w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
 * }, { note: "example" });
 * ```
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Map<string, StoredTensor> | Record<string, StoredTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = encodeSafetensors(tensors, metadata);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
  }
  await writeFileAtomic(path, bytes);
}
