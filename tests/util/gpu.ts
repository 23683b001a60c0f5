/**
 * Test helpers: one shared runtime for all tests of a process, and random inputs.
 * @module
 */

import { type Runtime, type Tensor, tensor, upload } from "../../lib/runtime.ts";
import { createRuntime, type KernelChoice } from "../../lib/device.ts";
import { PLAIN_TIER, type Tier } from "../../lib/tier.ts";
import { CPU_TIER } from "../../lib/cpu/tier.ts";
import { type Random, random } from "../../lib/random.ts";

let shared: Promise<Runtime> | undefined;

/**
 * The kernel tier the suite runs with: LENET_KERNELS=plain|cpu|auto (auto unless set), read
 * here only. CI runs the suite once with each (.ci/run).
 */
export function testKernels(): KernelChoice {
  const value = Deno.env.get("LENET_KERNELS") ?? "auto";
  if (!["auto", "plain", "cpu"].includes(value)) {
    throw new Error(`LENET_KERNELS=${value}: expected plain, cpu or auto`);
  }
  return value as KernelChoice;
}

/** The runtime shared by the tests of this process (the default adapter, LENET_KERNELS's tier). */
export function testRuntime(): Promise<Runtime> {
  shared ??= createRuntime("auto", { kernels: testKernels() });
  return shared;
}

/** Both tiers, the plain one (the reference) first, for tests that compare them. */
export const TIERS: readonly Tier[] = [PLAIN_TIER, CPU_TIER];

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
