/**
 * t-SNE on the CPU with the npm package tsne-js (1.0.3), the `--tsne tsne-js` choice of
 * `deno task embed`: exact gradient, dense P over all pairs, O(N^2) memory (8 float64 N x N
 * matrices: 64 MB at N = 1,000) and about a minute for 1,000 points here.
 *
 * How tsne-js differs from scikit-learn (and from lib/tsne/tsne.ts): P from euclidean distances
 * (not squared) over all points; random initialization (normal, std 1e-4); exaggeration
 * for its first 100 iterations (momentum 0.5 for 50, then 0.8); gains +0.05 / *0.95; it
 * stops early when the KL changes by less than 1e-6 or has not improved for 30 iterations.
 * It draws its initialization from Math.random, which has no seed: {@linkcode tsneJs}
 * swaps in our seeded generator while tsne-js initializes, so runs repeat.
 * @module
 */

import TSNE from "tsne-js";
import { random } from "../random.ts";

/** Options of {@linkcode tsneJs}; defaults as the seed's `TSNE(...)` call. */
export interface TsneJsOptions {
  n: number;
  dim: number;
  /** Default 30. */
  perplexity?: number;
  /** Default 300 (tsne-js's nIter). */
  iterations?: number;
  /** Default 200. */
  learningRate?: number;
  /** Seeds the initialization (default 42). */
  seed?: number;
  /** Default 12, scikit-learn's (tsne-js's own default is 4). */
  earlyExaggeration?: number;
}

/** The embedding [n, 2], tsne-js's final KL (over its dense P) and the wall time. */
export interface TsneJsResult {
  points: Float32Array;
  kl: number;
  seconds: number;
  /** Iterations tsne-js ran (fewer than asked when it stopped early). */
  iterations: number;
}

/**
 * Embeds `n` points of `dim` values in 2-D with tsne-js. Synchronous work inside: it blocks
 * the thread for the whole run.
 *
 * @example
 * ```ts
 * import { tsneJs } from "./tsne_js.ts";
 *
 * const data = Array.from({ length: 20 * 3 }, (_, i) => Math.sin(i));
 * // More than tsne-js's 100 exaggerated iterations: it reports no KL before they end.
 * const { points, kl } = tsneJs(data, { n: 20, dim: 3, perplexity: 5, iterations: 150 });
 * console.log(points.length, kl); // 40 and the KL of tsne-js
 * ```
 */
export function tsneJs(data: ArrayLike<number>, options: TsneJsOptions): TsneJsResult {
  const { n, dim } = options;
  if (!Number.isInteger(n) || n < 2) throw new Error(`tsneJs: needs at least 2 points (n = ${n})`);
  if (data.length !== n * dim) {
    throw new Error(`tsneJs: data has ${data.length} values, expected n * dim = ${n * dim}`);
  }
  const perplexity = options.perplexity ?? 30;
  if (!(perplexity > 0 && perplexity < n)) {
    throw new Error(
      `tsneJs: perplexity must be in (0, n) = (0, ${n}) (perplexity = ${perplexity})`,
    );
  }
  const start = performance.now();
  const model = new TSNE({
    dim: 2,
    perplexity,
    earlyExaggeration: options.earlyExaggeration ?? 12,
    learningRate: options.learningRate ?? 200,
    nIter: options.iterations ?? 300,
    metric: "euclidean",
  });
  const rows = Array.from(
    { length: n },
    (_, i) => Array.from({ length: dim }, (_, c) => data[i * dim + c]),
  );
  const rng = random(options.seed ?? 42);
  const unseeded = Math.random;
  Math.random = rng.next;
  try {
    model.init({ data: rows, type: "dense" });
  } finally {
    Math.random = unseeded;
  }
  const [kl, iterations] = model.run() as [number, number];
  const output = model.getOutput() as number[][];
  return {
    points: Float32Array.from(output.flat()),
    kl,
    seconds: (performance.now() - start) / 1000,
    iterations,
  };
}
