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
 * Web APIs only: runs wherever lib/runtime.ts does.
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
} from "./runtime.ts";
import { random } from "./random.ts";

// Small workgroups: on llvmpipe a workgroup runs on one core, and at N = 1,000 the
// repulsion has only 32 invocations (of 32 points each); 8 still spreads them over the cores.
const WORKGROUP = 8;
const UPDATE_WORKGROUP = 256;
/** Points per invocation of `nearest` and of the repulsion (constants in the kernel). */
const AFFINITY_ROWS = 8;
const REPULSE_ROWS = 32;
/** Up to this many dimensions `nearest` keeps in registers (MAX_QUADS in the kernel). */
const CACHED_DIMS = 16;
/**
 * llvmpipe ends every loop of a shader once 65,535 iterations, all loops together, have run
 * in one invocation (Mesa's LP_MAX_TGSI_LOOP_ITERATIONS), silently. So the long loops are cut:
 * `nearest` takes its candidates in slices (one dispatch each) and the repulsion its points j
 * (partial sums, added by `update`), each within this budget with room.
 */
const LOOP_BUDGET = 60000;
/** Points j per slice of the repulsion: SLICE / 2 loop steps (two points per step). */
const SLICE = 8192;
const KERNEL = "tsne.wgsl";
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
 * ```ts ignore
 * const rt = await createRuntime("auto");
 * const { points, kl } = await tsne(rt, logits, { n: 1000, dim: 10 });
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
 * ```ts ignore
 * const rows = await tsneAffinities(rt, data, { n: 1000, dim: 10, perplexity: 30 });
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
 * ```ts ignore
 * const program = await affinityProgram(rt, data, { n, dim, perplexity: 30 });
 * submit(rt, [...program.nearest, program.calibrate]);
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
  const [nearestK, calibrateK] = await Promise.all([
    kernel(rt, KERNEL, "nearest", { WORKGROUP }),
    kernel(rt, KERNEL, "calibrate", { WORKGROUP }),
  ]);
  const nearest: Op[] = [];
  for (let jBegin = 0; jBegin < n; jBegin += slice) {
    const bindings = [x, neighbours, row, params(jBegin)];
    nearest.push(op(rt, nearestK, bindings, grid(Math.ceil(n / AFFINITY_ROWS), WORKGROUP)));
  }
  return {
    k,
    neighbours,
    row,
    nearest,
    calibrate: op(rt, calibrateK, [row, params(0)], grid(n, WORKGROUP)),
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
 * ```ts ignore
 * const joint = jointProbabilities(await tsneAffinities(rt, data, options), { n });
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
 * ```ts ignore
 * const program = await tsneProgram(rt, joint, pcaInit(data, { n, dim }));
 * submit(rt, program.evaluate());
 * console.log(await program.kl());
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
  const [gradientK, updateK] = await Promise.all([
    kernel(rt, KERNEL, "gradient", { WORKGROUP }),
    kernel(rt, KERNEL, "update", { UPDATE_WORKGROUP }),
  ]);
  const uniforms: GPUBuffer[] = [];
  const made = new Map<string, Op>();
  const memo = (key: string, make: () => Op) => {
    let o = made.get(key);
    if (!o) made.set(key, o = make());
    return o;
  };
  // Workgroups: the repulsion's blocks of REPULSE_ROWS x WORKGROUP points, for each slice,
  // then the attraction's rows, WORKGROUP a workgroup.
  const repulseGroups = Math.ceil(n / (REPULSE_ROWS * WORKGROUP)) * slices;
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
      return op(rt, gradientK, bindings, repulseGroups + Math.ceil(n / WORKGROUP));
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

/**
 * scikit-learn's init="pca": the data's projection on its 2 leading principal components,
 * scaled so that the first column has standard deviation 1e-4. Each component's sign makes
 * its largest loading positive. In float64 on the CPU: O(n dim^2) for the covariance, then
 * subspace iteration (seeded start) for the leading eigenvectors. Constant data (no
 * spread) falls back to seeded normal noise of std 1e-4.
 *
 * @example
 * ```ts
 * const y = pcaInit(new Float32Array([0, 0, 1, 1, 2, 2.5]), { n: 3, dim: 2 });
 * ```
 */
export function pcaInit(
  data: ArrayLike<number>,
  options: { n: number; dim: number; seed?: number },
): Float32Array {
  const { n, dim } = options;
  const rng = random(options.seed ?? 42);
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let c = 0; c < dim; c++) mean[c] += data[i * dim + c] / n;
  const cov = new Float64Array(dim * dim);
  const centered = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < dim; c++) centered[c] = data[i * dim + c] - mean[c];
    for (let a = 0; a < dim; a++) {
      const va = centered[a];
      if (va === 0) continue;
      for (let b = a; b < dim; b++) cov[a * dim + b] += va * centered[b];
    }
  }
  for (let a = 0; a < dim; a++) for (let b = 0; b < a; b++) cov[a * dim + b] = cov[b * dim + a];
  const components = leadingEigenvectors(cov, dim, Math.min(2, dim), rng);

  const out = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    for (let m = 0; m < components.length; m++) {
      let s = 0;
      for (let c = 0; c < dim; c++) s += (data[i * dim + c] - mean[c]) * components[m][c];
      out[2 * i + m] = s;
    }
  }
  let sq = 0, first = 0;
  for (let i = 0; i < n; i++) first += out[2 * i] / n;
  for (let i = 0; i < n; i++) sq += (out[2 * i] - first) ** 2 / n;
  const std = Math.sqrt(sq);
  if (!(std > 0)) return Float32Array.from({ length: 2 * n }, () => 1e-4 * rng.normal());
  return Float32Array.from(out, (v) => v / std * 1e-4);
}

// The `count` leading unit eigenvectors of the symmetric positive semi-definite `matrix`
// [dim, dim]: orthogonal iteration on a block of up to 8 vectors with a Rayleigh-Ritz step
// (Jacobi on the block), until the leading residuals are tiny. A block as wide as dim is
// exact at once.
function leadingEigenvectors(
  matrix: Float64Array,
  dim: number,
  count: number,
  rng: ReturnType<typeof random>,
): Float64Array[] {
  const b = Math.min(dim, count + 6);
  let block = Array.from({ length: b }, () => Float64Array.from({ length: dim }, rng.normal));
  const times = (v: Float64Array) => {
    const out = new Float64Array(dim);
    for (let r = 0; r < dim; r++) {
      let s = 0;
      for (let c = 0; c < dim; c++) s += matrix[r * dim + c] * v[c];
      out[r] = s;
    }
    return out;
  };
  const dot = (u: Float64Array, v: Float64Array) => u.reduce((s, x, i) => s + x * v[i], 0);
  let ritz: Float64Array[] = [];
  for (let iteration = 0; iteration < 1000; iteration++) {
    block = orthonormalize(block);
    const images = block.map(times);
    const small = new Float64Array(b * b);
    for (let p = 0; p < b; p++) {
      for (let q = 0; q < b; q++) small[p * b + q] = dot(block[p], images[q]);
    }
    const { values, vectors } = jacobiEigen(small, b);
    const order = Array.from(values.keys()).sort((p, q) => values[q] - values[p]);
    ritz = order.map((m) => {
      const v = new Float64Array(dim);
      for (let p = 0; p < b; p++) {
        for (let c = 0; c < dim; c++) v[c] += vectors[p * b + m] * block[p][c];
      }
      return v;
    });
    const top = Math.max(Math.abs(values[order[0]]), Number.MIN_VALUE);
    let residual = 0;
    for (let m = 0; m < count; m++) {
      const av = times(ritz[m]);
      const lambda = values[order[m]];
      residual = Math.max(residual, Math.hypot(...av.map((x, c) => x - lambda * ritz[m][c])));
    }
    if (b === dim || residual <= 1e-10 * top) break;
    block = ritz.map(times);
  }
  return ritz.slice(0, count).map((v) => {
    let largest = 0;
    for (let c = 0; c < dim; c++) if (Math.abs(v[c]) > Math.abs(v[largest])) largest = c;
    return v[largest] < 0 ? v.map((x) => -x) : v;
  });
}

// Modified Gram-Schmidt; a vector that vanishes is replaced by a unit basis vector.
function orthonormalize(vectors: Float64Array[]): Float64Array<ArrayBuffer>[] {
  const out: Float64Array<ArrayBuffer>[] = [];
  for (const original of vectors) {
    const v = Float64Array.from(original);
    for (let attempt = 0; attempt <= v.length; attempt++) {
      for (const u of out) {
        const d = u.reduce((s, x, i) => s + x * v[i], 0);
        for (let i = 0; i < v.length; i++) v[i] -= d * u[i];
      }
      const norm = Math.hypot(...v);
      if (norm > 1e-12) {
        out.push(v.map((x) => x / norm));
        break;
      }
      v.fill(0);
      v[attempt % v.length] = 1;
    }
  }
  return out;
}

// Eigen-decomposition of a small symmetric matrix [m, m] by cyclic Jacobi rotations:
// eigenvalue p is values[p], its eigenvector column p of vectors [m, m].
function jacobiEigen(matrix: Float64Array, m: number): { values: number[]; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(m * m);
  for (let p = 0; p < m; p++) v[p * m + p] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, scale = 0;
    for (let p = 0; p < m; p++) {
      for (let q = 0; q < m; q++) {
        if (p !== q) off += a[p * m + q] ** 2;
        scale += a[p * m + q] ** 2;
      }
    }
    if (off <= 1e-30 * scale) break;
    for (let p = 0; p < m; p++) {
      for (let q = p + 1; q < m; q++) {
        const apq = a[p * m + q];
        if (apq === 0) continue;
        const theta = (a[q * m + q] - a[p * m + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let r = 0; r < m; r++) {
          const arp = a[r * m + p], arq = a[r * m + q];
          a[r * m + p] = c * arp - s * arq;
          a[r * m + q] = s * arp + c * arq;
        }
        for (let r = 0; r < m; r++) {
          const apr = a[p * m + r], aqr = a[q * m + r];
          a[p * m + r] = c * apr - s * aqr;
          a[q * m + r] = s * apr + c * aqr;
        }
        for (let r = 0; r < m; r++) {
          const vrp = v[r * m + p], vrq = v[r * m + q];
          v[r * m + p] = c * vrp - s * vrq;
          v[r * m + q] = s * vrp + c * vrq;
        }
      }
    }
  }
  return { values: Array.from({ length: m }, (_, p) => a[p * m + p]), vectors: v };
}

/**
 * The share of each point's `k` nearest 2-D neighbours that carry its label, averaged over
 * the points (ties broken by index): how well an embedding keeps classes together.
 * O(n^2) on the CPU.
 *
 * @example
 * ```ts
 * const points = new Float32Array([0, 0, 0, 1, 9, 9, 9, 8]);
 * neighbourAgreement(points, [0, 0, 1, 1], { k: 1 }); // 1
 * ```
 */
export function neighbourAgreement(
  points: ArrayLike<number>,
  labels: ArrayLike<number>,
  options: { k?: number } = {},
): number {
  const n = labels.length;
  const k = Math.min(options.k ?? 10, n - 1);
  if (points.length !== 2 * n) throw new Error(`${points.length} coordinates for ${n} labels`);
  let agree = 0;
  // The k nearest so far, by distance then index, kept sorted by insertion.
  const best = new Float64Array(k);
  const bestIndex = new Int32Array(k);
  for (let i = 0; i < n; i++) {
    best.fill(Infinity);
    bestIndex.fill(-1);
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const d = (points[2 * i] - points[2 * j]) ** 2 + (points[2 * i + 1] - points[2 * j + 1]) ** 2;
      if (!(d < best[k - 1])) continue;
      let at = k - 1;
      for (; at > 0 && d < best[at - 1]; at--) {
        best[at] = best[at - 1];
        bestIndex[at] = bestIndex[at - 1];
      }
      best[at] = d;
      bestIndex[at] = j;
    }
    for (const j of bestIndex) if (j >= 0 && labels[j] === labels[i]) agree++;
  }
  return agree / (n * k);
}

/**
 * KL(P || Q) of any embedding `points` [n, 2] against a sparse P, in float64 on the CPU
 * (O(n^2) for Z): to compare embeddings made by other programs on the same footing.
 *
 * @example
 * ```ts ignore
 * const kl = klDivergence(points, jointProbabilities(rows, { n }));
 * ```
 */
export function klDivergence(points: ArrayLike<number>, joint: JointProbabilities): number {
  const { n, rowStart, columns, values } = joint;
  let z = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const dx = points[2 * i] - points[2 * j], dy = points[2 * i + 1] - points[2 * j + 1];
      z += 1 / (1 + dx * dx + dy * dy);
    }
  }
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let e = rowStart[i]; e < rowStart[i + 1]; e++) {
      const j = columns[e], p = values[e];
      const dx = points[2 * i] - points[2 * j], dy = points[2 * i + 1] - points[2 * j + 1];
      const q = 1 / (1 + dx * dx + dy * dy) / z;
      if (p > 0) kl += p * Math.log(p / q);
    }
  }
  return kl;
}
