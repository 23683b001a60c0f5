/**
 * t-SNE on the GPU (kernels/tsne.wgsl), following scikit-learn's `TSNE` with the exact
 * gradient: input affinities from each point's k = min(N - 1, floor(3 * perplexity + 1))
 * nearest neighbours (as scikit-learn's default barnes_hut method computes them), PCA
 * initialization, early exaggeration, momentum and delta-bar-delta gains.
 *
 * Where the work happens:
 * - GPU, once: k nearest neighbours (squared euclidean, brute force: `nearest`) and each
 *   row's precision by bisection to the perplexity (`calibrate`).
 * - CPU, once: P = (P_cond + P_cond^T) / sum, kept sparse (CSR, at most 2Nk pairs: 7 MB at
 *   N = 10,000, where the dense P would take 400 MB); the PCA of the data (O(N D^2)).
 * - GPU, per iteration: two dispatches, `gradient` (O(N^2): every pair for Z and the
 *   repulsion, and the kept pairs of P for the attraction) and `update` (sums Z, applies
 *   the step).
 *   All iterations go in one submit; nothing is read back until the end (or every 50
 *   iterations when `onProgress` is given).
 *
 * Where this departs from scikit-learn: the exact gradient where its default (barnes_hut)
 * approximates the repulsion with a quadtree (angle 0.5); f32 on the GPU where it uses
 * float64 for the bisection; each row's bisection evaluated on distances minus the row's
 * smallest (the same p, without underflow); the KL we report is that of the returned points
 * (scikit-learn reports the one of the last iteration's starting points).
 *
 * The folder: this file runs the descent; affinities.ts makes P, pca.ts the starting points,
 * quality.ts measures any embedding, kernel.ts holds the kernel's constants and workgroup,
 * tsne_js.ts wraps the npm package tsne-js (the CPU alternative).
 *
 * Web APIs only: runs wherever lib/runtime.ts does.
 * @module
 */

import {
  kernel,
  type Op,
  op,
  readback,
  type Runtime,
  submit,
  type Tensor,
  tensor,
  uniform,
  upload,
} from "../runtime.ts";
import { KERNEL, REPULSE_ROWS, SLICE, tsneWorkgroup, UPDATE_WORKGROUP } from "./kernel.ts";
import { type JointProbabilities, jointProbabilities, tsneAffinities } from "./affinities.ts";
import { pcaInit } from "./pca.ts";

/** scikit-learn's _N_ITER_CHECK: how often progress (and the KL) is reported. */
const PROGRESS_EVERY = 50;

/** Options of {@linkcode tsne}; the defaults are the seed's `TSNE(...)` call. */
export interface TsneOptions {
  /** Number of points. */
  n: number;
  /** Dimensions of each input point. */
  dim: number;
  /** Effective number of neighbours (default 30); must be below `n`. */
  perplexity?: number;
  /** Gradient-descent iterations in all (default 300, scikit-learn's max_iter). */
  iterations?: number;
  /** Step size (default 200). */
  learningRate?: number;
  /** Seeds the PCA's start vectors (default 42); the rest is deterministic. */
  seed?: number;
  /** Factor on P during the first phase (default 12). */
  earlyExaggeration?: number;
  /** Iterations of the first phase, with momentum 0.5 (default 250); then 0.8. */
  exaggerationIterations?: number;
  /**
   * Called every 50 iterations (after iteration 50, 100, ...) with the KL divergence of the
   * positions that iteration started from, against the unexaggerated P. Giving it splits
   * the work into one submit per 50 iterations, with a small readback after each.
   */
  onProgress?: (iteration: number, kl?: number) => void;
}

/** What {@linkcode tsne} returns. */
export interface TsneResult {
  /** The embedding, [n, 2] row-major. */
  points: Float32Array;
  /** KL(P || Q) of the returned points over the kept pairs. */
  kl: number;
  /** Wall time of the whole call. */
  seconds: number;
}

/**
 * Embeds `n` points of `dim` dimensions in 2-D with t-SNE on the GPU, as scikit-learn's
 * `TSNE(n_components=2, perplexity=30, learning_rate=200, max_iter=300, init="pca")` with
 * the exact gradient. Throws for fewer than 2 points, a perplexity not in (0, n), data of
 * the wrong length or with non-finite values.
 *
 * @example
 * ```ts
 * import { createRuntime } from "../device.ts";
 * import { tsne } from "./tsne.ts";
 *
 * const rt = await createRuntime();
 * // 40 points in 3-D: two groups of 20 around (0, 0, 0) and (5, 5, 5).
 * const data = Float32Array.from({ length: 120 }, (_, i) => Math.sin(i) + (i < 60 ? 0 : 5));
 * const { points, kl } = await tsne(rt, data, { n: 40, dim: 3, perplexity: 5 });
 * console.log(points.length, kl); // 80 and a small KL
 * ```
 */
export async function tsne(
  rt: Runtime,
  data: Float32Array,
  options: TsneOptions,
): Promise<TsneResult> {
  const start = performance.now();
  const o = checkOptions(data, options);
  const { n, dim } = o;

  const rows = await tsneAffinities(rt, data, { n, dim, perplexity: o.perplexity });
  const joint = jointProbabilities(rows, { n });
  const program = await tsneProgram(rt, joint, pcaInit(data, { n, dim, seed: o.seed }));

  try {
    let pending: Op[] = [];
    for (let it = 0; it < o.iterations; it++) {
      const exploring = it < o.exaggerationIterations;
      const report = o.onProgress !== undefined && (it + 1) % PROGRESS_EVERY === 0;
      pending.push(...program.iteration({
        exaggeration: exploring ? o.earlyExaggeration : 1,
        momentum: exploring ? 0.5 : 0.8,
        learningRate: o.learningRate,
        reset: it === 0 || it === o.exaggerationIterations,
        withKl: report,
      }));
      if (report) {
        submit(rt, pending);
        pending = [];
        o.onProgress?.(it + 1, await program.kl());
      }
    }
    submit(rt, [...pending, ...program.evaluate()]);
    const kl = await program.kl();
    const points = (await readback(rt, program.positions)).slice(0, 2 * n);
    return { points, kl, seconds: (performance.now() - start) / 1000 };
  } finally {
    program.destroy();
  }
}

interface CheckedOptions {
  n: number;
  dim: number;
  perplexity: number;
  iterations: number;
  learningRate: number;
  seed: number;
  earlyExaggeration: number;
  exaggerationIterations: number;
  onProgress?: (iteration: number, kl?: number) => void;
}

function checkOptions(data: Float32Array, options: TsneOptions): CheckedOptions {
  const { n, dim } = options;
  const o = {
    n,
    dim,
    perplexity: options.perplexity ?? 30,
    iterations: options.iterations ?? 300,
    learningRate: options.learningRate ?? 200,
    seed: options.seed ?? 42,
    earlyExaggeration: options.earlyExaggeration ?? 12,
    exaggerationIterations: options.exaggerationIterations ?? 250,
    onProgress: options.onProgress,
  };
  const fail = (message: string) => {
    throw new Error(`tsne: ${message}`);
  };
  if (!Number.isInteger(n) || n < 2) fail(`needs at least 2 points (n = ${n})`);
  if (!Number.isInteger(dim) || dim < 1) fail(`dim must be a positive integer (dim = ${dim})`);
  if (data.length !== n * dim) {
    fail(`data has ${data.length} values, expected n * dim = ${n} * ${dim} = ${n * dim}`);
  }
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    fail(`data[${bad}] = ${data[bad]} (point ${Math.floor(bad / dim)}): values must be finite`);
  }
  if (!(o.perplexity > 0 && o.perplexity < n)) {
    fail(`perplexity must be in (0, n) = (0, ${n}) (perplexity = ${o.perplexity})`);
  }
  if (!Number.isInteger(o.iterations) || o.iterations < 1) {
    fail(`iterations must be a positive integer (iterations = ${o.iterations})`);
  }
  if (!(o.learningRate > 0)) fail(`learningRate must be positive (${o.learningRate})`);
  if (!(o.earlyExaggeration >= 1)) {
    fail(`earlyExaggeration must be at least 1 (${o.earlyExaggeration})`);
  }
  if (!Number.isInteger(o.exaggerationIterations) || o.exaggerationIterations < 0) {
    fail(`exaggerationIterations must be an integer >= 0 (${o.exaggerationIterations})`);
  }
  return o;
}

/** The optimizer's GPU state and its dispatches (see kernels/tsne.wgsl). */
export interface TsneProgram {
  /** [2 * ceil(n / 2), 2]: the current embedding (rows past n are padding). */
  positions: Tensor;
  /** [n, 4]: attract_i (exaggerated), kl_i and 0, from the last `gradient`. */
  attraction: Tensor;
  /** [slices, n, 4]: repulse_i, z_i and 0 over each slice of 8,192 points j. */
  repulsion: Tensor;
  /** [n, 4]: the last step and the gains of each coordinate. */
  state: Tensor;
  /** [2]: Z and sum_i kl_i of the last update pass. */
  stats: Tensor;
  /** The two dispatches of one iteration (made once per distinct setting). */
  iteration(setting: IterationSetting): Op[];
  /** Gradient with the KL shares and a sum that moves nothing: the KL of the positions. */
  evaluate(): Op[];
  /** Reads the stats of the last pass with KL shares back: KL(P||Q), unexaggerated P. */
  kl(): Promise<number>;
  /** Frees the buffers. */
  destroy(): void;
}

/** The constants of one iteration. */
export interface IterationSetting {
  exaggeration: number;
  momentum: number;
  learningRate: number;
  /** First iteration of a phase: the step starts at 0 and the gains at 1. */
  reset: boolean;
  /** Also compute the KL shares (for a progress report). */
  withKl: boolean;
}

/**
 * Uploads P and the initial positions and compiles the iteration's kernels.
 *
 * @example
 * ```ts
 * import { createRuntime } from "../device.ts";
 * import { submit } from "../runtime.ts";
 * import { jointProbabilities, tsneAffinities } from "./affinities.ts";
 * import { pcaInit } from "./pca.ts";
 * import { tsneProgram } from "./tsne.ts";
 *
 * const rt = await createRuntime();
 * const n = 20, dim = 2;
 * const data = Float32Array.from({ length: n * dim }, (_, i) => Math.cos(i));
 * const joint = jointProbabilities(await tsneAffinities(rt, data, { n, dim, perplexity: 5 }), {
 *   n,
 * });
 * const program = await tsneProgram(rt, joint, pcaInit(data, { n, dim }));
 * submit(rt, program.evaluate());
 * console.log(await program.kl()); // KL(P || Q) of the starting points
 * program.destroy();
 * ```
 */
export async function tsneProgram(
  rt: Runtime,
  joint: JointProbabilities,
  initial: Float32Array,
): Promise<TsneProgram> {
  const n = joint.n;
  if (initial.length !== 2 * n) throw new Error(`tsne: ${initial.length} initial values for ${n}`);
  // Rows padded with p = 0 entries (column: the row's own point) to multiples of 4, for the
  // kernel's vec4 loads.
  const padded = padRows(joint);
  const nnz = padded.values.length;
  // Whole vec4s (two points each) for the repulsion's loads; the padding stays 0.
  const positions = tensor(rt, [2 * Math.ceil(n / 2), 2], { label: "tsne positions" });
  const rowStart = tensor(rt, [n + 1], { dtype: "u32", label: "tsne row_start" });
  const columns = tensor(rt, [nnz], { dtype: "u32", label: "tsne columns" });
  const values = tensor(rt, [nnz], { label: "tsne values" });
  const slices = Math.ceil(n / SLICE);
  const attraction = tensor(rt, [n, 4], { label: "tsne attraction" });
  const repulsion = tensor(rt, [slices, n, 4], { label: "tsne repulsion" });
  const state = tensor(rt, [n, 4], { label: "tsne state" });
  const stats = tensor(rt, [2], { label: "tsne stats" });
  const start = new Float32Array(positions.size);
  start.set(initial);
  upload(rt, positions, start);
  upload(rt, rowStart, padded.rowStart);
  upload(rt, columns, padded.columns);
  upload(rt, values, padded.values);
  const workgroup = tsneWorkgroup(rt);
  const [gradientK, updateK] = await Promise.all([
    kernel(rt, KERNEL, "gradient", { WORKGROUP: workgroup }),
    kernel(rt, KERNEL, "update", { UPDATE_WORKGROUP }),
  ]);
  const uniforms: GPUBuffer[] = [];
  const made = new Map<string, Op>();
  const memo = (key: string, make: () => Op) => {
    let o = made.get(key);
    if (!o) made.set(key, o = make());
    return o;
  };
  // Workgroups: the repulsion's blocks of REPULSE_ROWS x workgroup points, for each slice,
  // then the attraction's rows, `workgroup` a workgroup.
  const repulseGroups = Math.ceil(n / (REPULSE_ROWS * workgroup)) * slices;
  const gradientOp = (exaggeration: number, withKl: boolean) =>
    memo(`g${exaggeration}:${withKl}`, () => {
      const u = uniform(rt, "tsne gradient", {
        n,
        slice: SLICE,
        repulse_groups: repulseGroups,
        "f32:exaggeration": exaggeration,
        with_kl: withKl ? 1 : 0,
      });
      uniforms.push(u.buffer);
      const bindings = [positions, positions, rowStart, columns, values, repulsion, attraction, u];
      return op(rt, gradientK, bindings, repulseGroups + Math.ceil(n / workgroup));
    });
  const updateOp = (momentum: number, learningRate: number, reset: boolean, apply: boolean) =>
    memo(`u${momentum}:${learningRate}:${reset}:${apply}`, () => {
      const u = uniform(rt, "tsne update", {
        n,
        slices,
        "f32:momentum": momentum,
        "f32:learning_rate": learningRate,
        reset: reset ? 1 : 0,
        apply: apply ? 1 : 0,
      });
      uniforms.push(u.buffer);
      return op(rt, updateK, [positions, attraction, repulsion, state, stats, u], 1);
    });
  return {
    positions,
    attraction,
    repulsion,
    state,
    stats,
    iteration: (s) => [
      gradientOp(s.exaggeration, s.withKl),
      updateOp(s.momentum, s.learningRate, s.reset, true),
    ],
    evaluate: () => [gradientOp(1, true), updateOp(0, 0, false, false)],
    kl: async () => {
      const [z, sumKl] = await readback(rt, stats);
      return joint.entropyTerm - sumKl + joint.total * Math.log(z);
    },
    destroy: () => {
      for (const t of [positions, rowStart, columns, values, attraction, repulsion, state, stats]) {
        t.buffer.destroy();
      }
      for (const b of uniforms) b.destroy();
    },
  };
}

function padRows(joint: JointProbabilities) {
  const { n } = joint;
  const rowStart = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) {
    const count = joint.rowStart[i + 1] - joint.rowStart[i];
    rowStart[i + 1] = rowStart[i] + Math.ceil(count / 4) * 4;
  }
  const columns = new Uint32Array(rowStart[n]);
  const values = new Float32Array(rowStart[n]);
  for (let i = 0; i < n; i++) {
    columns.fill(i, rowStart[i], rowStart[i + 1]);
    const from = joint.rowStart[i], to = joint.rowStart[i + 1];
    columns.set(joint.columns.subarray(from, to), rowStart[i]);
    values.set(joint.values.subarray(from, to), rowStart[i]);
  }
  return { rowStart, columns, values };
}
