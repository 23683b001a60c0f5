/**
 * Test helpers: one shared runtime for all tests of a process, and random inputs.
 * @module
 */

import { createRuntime, type Runtime, type Tensor, tensor, upload } from "../../lib/runtime.ts";
import { type Random, random } from "../../lib/random.ts";

let shared: Promise<Runtime> | undefined;

/** The runtime shared by the tests of this process (the default adapter). */
export function testRuntime(): Promise<Runtime> {
  shared ??= createRuntime("auto");
  return shared;
}

/** Test options for Deno.test: our runtime keeps its device open across tests. */
export const gpuTest = { sanitizeResources: false, sanitizeOps: false };

/** `n` floats uniform in [low, high) from `rng`. */
export function randomArray(
  rng: Random,
  n: number,
  low = -1,
  high = 1,
): Float32Array<ArrayBuffer> {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform(low, high);
  return out;
}

/** A tensor holding `data`. */
export function tensorFrom(
  rt: Runtime,
  shape: number[],
  data: Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>,
  label = "t",
): Tensor {
  const t = tensor(rt, shape, { label, dtype: data instanceof Uint32Array ? "u32" : "f32" });
  upload(rt, t, data);
  return t;
}

export { random };
