/**
 * How good an embedding is, for any program's points: the share of each point's nearest
 * 2-D neighbours that carry its label, and t-SNE's KL(P || Q). On the CPU.
 * @module
 */

import type { JointProbabilities } from "./affinities.ts";

/**
 * The share of each point's `k` nearest 2-D neighbours that carry its label, averaged over
 * the points (ties broken by index): how well an embedding keeps classes together.
 * O(n^2) on the CPU.
 *
 * @example
 * ```ts
 * import { neighbourAgreement } from "./quality.ts";
 *
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
 * ```ts
 * import { jointProbabilities } from "./affinities.ts";
 * import { klDivergence } from "./quality.ts";
 *
 * const rows = { k: 1, neighbours: new Uint32Array([1, 0]), conditional: new Float32Array([1, 1]) };
 * const joint = jointProbabilities(rows, { n: 2 });
 * console.log(klDivergence(new Float32Array([0, 0, 1, 0]), joint)); // 0: two points, q = p
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
