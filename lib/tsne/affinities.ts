/**
 * t-SNE's input affinities (scikit-learn's, with the exact gradient's neighbours): each
 * point's k nearest neighbours and p_{j|i} by bisection to the perplexity on the GPU
 * (kernels/tsne.wgsl's `nearest` and `calibrate`), then the joint P on the CPU, sparse.
 * @module
 */

import {
  grid,
  kernel,
  type Op,
  op,
  readback,
  readbackU32,
  type Runtime,
  submit,
  type Tensor,
  tensor,
  uniform,
  upload,
} from "../runtime.ts";
import { AFFINITY_ROWS, CACHED_DIMS, KERNEL, LOOP_BUDGET, tsneWorkgroup } from "./kernel.ts";

/** The neighbours kept per point: scikit-learn's min(n - 1, floor(3 * perplexity + 1)). */
export function neighbourCount(n: number, perplexity: number): number {
  return Math.min(n - 1, Math.floor(3 * perplexity + 1));
}

/** Each point's k nearest neighbours and p_{j|i} over them, rows of k in no set order. */
export interface Affinities {
  k: number;
  /** [n, k]: the neighbours j of point i. */
  neighbours: Uint32Array;
  /** [n, k]: p_{j|i}, each row summing to 1. */
  conditional: Float32Array;
}

/**
 * The conditional affinities on the GPU (one submit, then a readback): each point's
 * k nearest neighbours by squared euclidean distance and p_{j|i} with the precision found by
 * bisection to match log(perplexity) (scikit-learn's _binary_search_perplexity).
 *
 * @example
 * ```ts
 * import { createRuntime } from "../device.ts";
 * import { tsneAffinities } from "./affinities.ts";
 *
 * const rt = await createRuntime();
 * const data = Float32Array.from({ length: 20 * 3 }, (_, i) => Math.sin(i));
 * const rows = await tsneAffinities(rt, data, { n: 20, dim: 3, perplexity: 5 });
 * console.log(rows.k); // 16 neighbours a point: min(n - 1, floor(3 * 5 + 1))
 * ```
 */
export async function tsneAffinities(
  rt: Runtime,
  data: Float32Array,
  options: { n: number; dim: number; perplexity: number },
): Promise<Affinities> {
  const program = await affinityProgram(rt, data, options);
  submit(rt, [...program.nearest, program.calibrate]);
  const result = {
    k: program.k,
    neighbours: await readbackU32(rt, program.neighbours),
    conditional: await readback(rt, program.row),
  };
  program.destroy();
  return result;
}

/** The buffers and the dispatches of {@linkcode tsneAffinities}. */
export interface AffinityProgram {
  k: number;
  /** [n, k] u32: each row's neighbours. */
  neighbours: Tensor;
  /** [n, k]: the distances after `nearest`, p_{j|i} after `calibrate`. */
  row: Tensor;
  /** Finds the k nearest neighbours (rewrites `neighbours` and `row`), a slice each. */
  nearest: Op[];
  /** Turns `row`'s distances into probabilities, in place. */
  calibrate: Op;
  destroy(): void;
}

/**
 * Uploads the data and makes the dispatches of {@linkcode tsneAffinities} (for benchmarks).
 *
 * @example
 * ```ts
 * import { createRuntime } from "../device.ts";
 * import { readback, submit } from "../runtime.ts";
 * import { affinityProgram } from "./affinities.ts";
 *
 * const rt = await createRuntime();
 * const data = Float32Array.from({ length: 20 * 3 }, (_, i) => Math.sin(i));
 * const program = await affinityProgram(rt, data, { n: 20, dim: 3, perplexity: 5 });
 * submit(rt, [...program.nearest, program.calibrate]);
 * console.log(await readback(rt, program.row)); // p_{j|i}, 20 rows of 16
 * program.destroy();
 * ```
 */
export async function affinityProgram(
  rt: Runtime,
  data: Float32Array,
  options: { n: number; dim: number; perplexity: number },
): Promise<AffinityProgram> {
  const { n, dim, perplexity } = options;
  const k = neighbourCount(n, perplexity);
  // `calibrate` runs up to 100 bisection steps of k each: within llvmpipe's loop budget.
  if (rt.isFallback && 102 * k > LOOP_BUDGET) {
    throw new Error(
      `tsne: perplexity ${perplexity} keeps ${k} neighbours a point; on a software adapter ` +
        `(llvmpipe) the bisection allows at most ${Math.floor(LOOP_BUDGET / 102)} (perplexity ` +
        `${Math.floor((LOOP_BUDGET / 102 - 1) / 3)})`,
    );
  }
  const limit = rt.device.limits.maxStorageBufferBindingSize;
  if (n * Math.max(Math.ceil(dim / 4) * 4, k) * 4 > limit) {
    throw new Error(
      `tsne: ${n} x max(dim ${dim}, k ${k}) floats exceed one binding (${limit} bytes); ` +
        "reduce the dimensions or the perplexity",
    );
  }
  // Each point padded with zeros to whole vec4s: the padding adds 0 to every distance.
  const quads = Math.ceil(dim / 4);
  const padded = new Float32Array(n * quads * 4);
  for (let i = 0; i < n; i++) padded.set(data.subarray(i * dim, (i + 1) * dim), i * quads * 4);
  const x = tensor(rt, [n, quads * 4], { label: "tsne data" });
  upload(rt, x, padded);
  const neighbours = tensor(rt, [n, k], { dtype: "u32", label: "tsne neighbours" });
  const row = tensor(rt, [n, k], { label: "tsne conditional" });
  // Loop steps per candidate, at most: the candidate loop, the uncached dimensions, the
  // loop over the 8 rows and a sift down each heap.
  const levels = Math.ceil(Math.log2(k + 1));
  const perCandidate = 1 + (dim > CACHED_DIMS ? quads : 0) + AFFINITY_ROWS * (1 + levels);
  const slice = Math.max(1, Math.floor((LOOP_BUDGET - AFFINITY_ROWS * k) / perCandidate));
  const uniforms: GPUBuffer[] = [];
  const params = (jBegin: number) => {
    const u = uniform(rt, "tsne affinities", {
      n,
      quads,
      k,
      "f32:log_perplexity": Math.log(perplexity),
      j_begin: jBegin,
      j_end: Math.min(n, jBegin + slice),
    });
    uniforms.push(u.buffer);
    return u;
  };
  const workgroup = tsneWorkgroup(rt);
  const [nearestK, calibrateK] = await Promise.all([
    kernel(rt, KERNEL, "nearest", { WORKGROUP: workgroup }),
    kernel(rt, KERNEL, "calibrate", { WORKGROUP: workgroup }),
  ]);
  const nearest: Op[] = [];
  for (let jBegin = 0; jBegin < n; jBegin += slice) {
    const bindings = [x, neighbours, row, params(jBegin)];
    nearest.push(op(rt, nearestK, bindings, grid(Math.ceil(n / AFFINITY_ROWS), workgroup)));
  }
  return {
    k,
    neighbours,
    row,
    nearest,
    calibrate: op(rt, calibrateK, [row, params(0)], grid(n, workgroup)),
    destroy: () => {
      for (const t of [x, neighbours, row]) t.buffer.destroy();
      for (const b of uniforms) b.destroy();
    },
  };
}

/** The symmetric joint P of the kept pairs, in compressed sparse rows. */
export interface JointProbabilities {
  n: number;
  /** [n + 1]: row i's entries are rowStart[i] .. rowStart[i + 1] - 1. */
  rowStart: Uint32Array;
  /** [nnz]: the column j of each entry, ascending within a row. */
  columns: Uint32Array;
  /** [nnz]: p_ij = p_ji, all entries summing to 1. */
  values: Float32Array;
  /** Sum of p log p over the entries (float64, of the f32 values): a term of the KL. */
  entropyTerm: number;
  /** Sum of the f32 values (1 up to rounding). */
  total: number;
}

/**
 * P = (P_cond + P_cond^T) / sum, as scikit-learn's _joint_probabilities_nn: a pair kept by
 * both of its points gets both conditionals, one kept by one point gets that one.
 * Sums in float64; O(n k) time and memory.
 *
 * @example
 * ```ts
 * import { jointProbabilities } from "./affinities.ts";
 *
 * // 3 points, each keeping 1 neighbour: 0 -> 1, 1 -> 0, 2 -> 1.
 * const rows = {
 *   k: 1,
 *   neighbours: new Uint32Array([1, 0, 1]),
 *   conditional: new Float32Array([1, 1, 1]),
 * };
 * const joint = jointProbabilities(rows, { n: 3 });
 * console.log(joint.values); // p_01 = p_10 = 1/3, p_12 = p_21 = 1/6
 * ```
 */
export function jointProbabilities(rows: Affinities, options: { n: number }): JointProbabilities {
  const { n } = options;
  const { k, neighbours, conditional } = rows;
  // Row i holds its own k neighbours plus every point that keeps i: count, then fill.
  const counts = new Uint32Array(n + 1);
  for (let e = 0; e < n * k; e++) {
    counts[Math.floor(e / k) + 1]++;
    counts[neighbours[e] + 1]++;
  }
  for (let i = 0; i < n; i++) counts[i + 1] += counts[i];
  const fill = counts.slice(0, n);
  const cols = new Uint32Array(counts[n]);
  const vals = new Float64Array(counts[n]);
  for (let e = 0; e < n * k; e++) {
    const i = Math.floor(e / k), j = neighbours[e];
    cols[fill[i]] = j;
    vals[fill[i]++] = conditional[e];
    cols[fill[j]] = i;
    vals[fill[j]++] = conditional[e];
  }
  // Merge the duplicates of a row (a pair both points keep) and sort it by column.
  const rowStart = new Uint32Array(n + 1);
  const columns = new Uint32Array(counts[n]);
  const sums = new Float64Array(n);
  const seen = new Int32Array(n).fill(-1);
  let end = 0, sum = 0;
  for (let i = 0; i < n; i++) {
    const first = end;
    for (let e = counts[i]; e < counts[i + 1]; e++) {
      const j = cols[e];
      if (seen[j] !== i) {
        seen[j] = i;
        sums[j] = 0;
        columns[end++] = j;
      }
      sums[j] += vals[e];
      sum += vals[e];
    }
    columns.subarray(first, end).sort();
    for (let e = first; e < end; e++) vals[e] = sums[columns[e]];
    rowStart[i + 1] = end;
  }
  const merged = vals.subarray(0, end);
  const values = new Float32Array(merged.length);
  let entropyTerm = 0, total = 0;
  for (let e = 0; e < merged.length; e++) {
    values[e] = merged[e] / Math.max(sum, Number.EPSILON);
    if (values[e] > 0) entropyTerm += values[e] * Math.log(values[e]);
    total += values[e];
  }
  return { n, rowStart, columns: columns.slice(0, end), values, entropyTerm, total };
}
