/**
 * The host's side of kernels/tsne.wgsl: its file, the constants it shares with the kernel,
 * and the workgroup size for the runtime's tier.
 * @module
 */

import type { Runtime } from "../runtime.ts";

/** The kernel file of every t-SNE pass. */
export const KERNEL = "tsne.wgsl";
/** The update's single workgroup (UPDATE_WORKGROUP in the kernel: a power of two). */
export const UPDATE_WORKGROUP = 256;
/** Points per invocation of `nearest` (constant AFFINITY_ROWS in the kernel). */
export const AFFINITY_ROWS = 8;
/** Points per invocation of the repulsion (constant REPULSE_ROWS in the kernel). */
export const REPULSE_ROWS = 32;
/** Up to this many dimensions `nearest` keeps in registers (MAX_QUADS in the kernel). */
export const CACHED_DIMS = 16;
/**
 * llvmpipe ends every loop of a shader once 65,535 iterations, all loops together, have run
 * in one invocation (Mesa's LP_MAX_TGSI_LOOP_ITERATIONS), silently. So the long loops are cut:
 * `nearest` takes its candidates in slices (one dispatch each) and the repulsion its points j
 * (partial sums, added by `update`), each within this budget with room.
 */
export const LOOP_BUDGET = 60000;
/** Points j per slice of the repulsion: SLICE / 2 loop steps (two points per step). */
export const SLICE = 8192;

/**
 * The workgroup of `nearest`, `calibrate` and `gradient` (WORKGROUP in the kernel) for the
 * runtime's tier: 64 on the plain tier, as a GPU wants it; 8 on the CPU tier, because on
 * llvmpipe a workgroup runs on one core, and at N = 1,000 the repulsion has only 32
 * invocations (of 32 points each): 8 still spreads them over the cores. (On llvmpipe a whole
 * t-SNE of 1,000 points with 64 took 0.90-1.04 times as long as with 8 in two interleaved
 * sets: within noise, the attraction's per-row loads dominating.)
 *
 * @example
 * ```ts
 * import { createRuntime } from "../device.ts";
 * import { tsneWorkgroup } from "./kernel.ts";
 *
 * const rt = await createRuntime();
 * console.log(tsneWorkgroup(rt)); // 8 on llvmpipe
 * ```
 */
export function tsneWorkgroup(rt: Runtime): number {
  return rt.tier.name === "cpu" ? 8 : 64;
}
