/**
 * t-SNE in float64, dense and plain, to check kernels/tsne.wgsl and lib/tsne/: the same
 * algorithm as scikit-learn's TSNE with the exact gradient and the k-nearest-neighbour P of
 * its barnes_hut method. O(n^2) memory: for small n only.
 * @module
 */

/** Sizes of a data set: n points of dim values, row-major. */
export interface DataShape {
  n: number;
  dim: number;
}

/** Each point's k nearest neighbours (nearest first) and p_{j|i} over them. */
export interface ReferenceConditional {
  k: number;
  /** [n, k] neighbour indices, by distance (ties by index). */
  neighbours: Int32Array;
  /** [n, k] p_{j|i}, in the order of `neighbours`. */
  conditional: Float64Array;
  /** [n] the precision found for each row. */
  beta: Float64Array;
}

/**
 * scikit-learn's _joint_probabilities_nn up to the symmetrization: k = min(n - 1,
 * floor(3 perplexity + 1)) nearest neighbours by squared euclidean distance, then
 * _binary_search_perplexity (100 steps, tolerance 1e-5 on the entropy, a zero sum set to
 * 1e-8), literally.
 */
export function conditionalProbabilities(
  data: ArrayLike<number>,
  shape: DataShape & { perplexity: number },
): ReferenceConditional {
  const { n, dim, perplexity } = shape;
  const k = Math.min(n - 1, Math.floor(3 * perplexity + 1));
  const neighbours = new Int32Array(n * k);
  const conditional = new Float64Array(n * k);
  const beta = new Float64Array(n);
  const desired = Math.log(perplexity);
  for (let i = 0; i < n; i++) {
    const d: number[] = [];
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < dim; c++) s += (data[i * dim + c] - data[j * dim + c]) ** 2;
      d.push(s);
    }
    const order = Array.from(d.keys()).filter((j) => j !== i).sort((a, b) => d[a] - d[b] || a - b)
      .slice(0, k);
    const dist = order.map((j) => d[j]);
    let b = 1, bMin = -Infinity, bMax = Infinity;
    const p = new Float64Array(k);
    for (let step = 0; step < 100; step++) {
      let sum = 0;
      for (let s = 0; s < k; s++) sum += p[s] = Math.exp(-dist[s] * b);
      if (sum === 0) sum = 1e-8;
      let weighted = 0;
      for (let s = 0; s < k; s++) {
        p[s] /= sum;
        weighted += dist[s] * p[s];
      }
      const excess = Math.log(sum) + b * weighted - desired;
      if (Math.abs(excess) <= 1e-5) break;
      if (excess > 0) {
        bMin = b;
        b = bMax === Infinity ? b * 2 : (b + bMax) / 2;
      } else {
        bMax = b;
        b = bMin === -Infinity ? b / 2 : (b + bMin) / 2;
      }
    }
    neighbours.set(order, i * k);
    conditional.set(p, i * k);
    beta[i] = b;
  }
  return { k, neighbours, conditional, beta };
}

/** The dense joint P [n, n] = (P_cond + P_cond^T) / sum. */
export function jointDense(rows: ReferenceConditional, shape: { n: number }): Float64Array {
  const { n } = shape;
  const { k, neighbours, conditional } = rows;
  const p = new Float64Array(n * n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let s = 0; s < k; s++) {
      const j = neighbours[i * k + s], v = conditional[i * k + s];
      p[i * n + j] += v;
      p[j * n + i] += v;
      sum += 2 * v;
    }
  }
  return p.map((v) => v / sum);
}

/** The exact objective at y [n, 2] and its parts (KL over the pairs where p > 0). */
export interface ReferenceGradient {
  /** [n, 2]: dC/dy = 4 sum_j (a p_ij - q_ij) w_ij (y_i - y_j). */
  gradient: Float64Array;
  /** [n, 2]: a sum_j p_ij w_ij (y_i - y_j). */
  attract: Float64Array;
  /** [n, 2]: sum_j w_ij^2 (y_i - y_j). */
  repulse: Float64Array;
  /** sum_{i != j} w_ij. */
  z: number;
  /** KL(P || Q) with the unexaggerated P. */
  kl: number;
}

/**
 * scikit-learn's _kl_divergence (degrees of freedom 1): w_ij = 1 / (1 + |y_i - y_j|^2),
 * q_ij = w_ij / Z, gradient 4 sum_j (a p_ij - q_ij) w_ij (y_i - y_j) with exaggeration a.
 */
export function tsneGradient(
  y: ArrayLike<number>,
  p: Float64Array,
  options: { n: number; exaggeration?: number },
): ReferenceGradient {
  const { n } = options;
  const a = options.exaggeration ?? 1;
  const w = new Float64Array(n * n);
  let z = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      w[i * n + j] = 1 / (1 + (y[2 * i] - y[2 * j]) ** 2 + (y[2 * i + 1] - y[2 * j + 1]) ** 2);
      z += w[i * n + j];
    }
  }
  const gradient = new Float64Array(2 * n);
  const attract = new Float64Array(2 * n);
  const repulse = new Float64Array(2 * n);
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const wij = w[i * n + j], pij = p[i * n + j];
      for (let c = 0; c < 2; c++) {
        const d = y[2 * i + c] - y[2 * j + c];
        attract[2 * i + c] += a * pij * wij * d;
        repulse[2 * i + c] += wij * wij * d;
        gradient[2 * i + c] += 4 * (a * pij - wij / z) * wij * d;
      }
      if (pij > 0) kl += pij * Math.log(pij / (wij / z));
    }
  }
  return { gradient, attract, repulse, z, kl };
}

/** The schedule of {@linkcode tsneDescent}; defaults as scikit-learn's. */
export interface DescentOptions {
  n: number;
  iterations: number;
  learningRate?: number;
  earlyExaggeration?: number;
  exaggerationIterations?: number;
}

/**
 * scikit-learn's optimization: `exaggerationIterations` steps of _gradient_descent with
 * P * earlyExaggeration and momentum 0.5, then the rest with momentum 0.8; each phase starts
 * with steps 0 and gains 1; gains +0.2 where step and gradient differ in sign, else * 0.8,
 * at least 0.01. Returns the positions after `iterations` steps.
 */
export function tsneDescent(
  y0: ArrayLike<number>,
  p: Float64Array,
  options: DescentOptions,
): Float64Array {
  const { n, iterations } = options;
  const lr = options.learningRate ?? 200;
  const exaggeration = options.earlyExaggeration ?? 12;
  const explore = options.exaggerationIterations ?? 250;
  const y = Float64Array.from(y0);
  let step = new Float64Array(2 * n);
  let gain = new Float64Array(2 * n);
  for (let it = 0; it < iterations; it++) {
    if (it === 0 || it === explore) {
      step = new Float64Array(2 * n);
      gain = new Float64Array(2 * n).fill(1);
    }
    const exploring = it < explore;
    const { gradient } = tsneGradient(y, p, { n, exaggeration: exploring ? exaggeration : 1 });
    const momentum = exploring ? 0.5 : 0.8;
    for (let c = 0; c < 2 * n; c++) {
      gain[c] = step[c] * gradient[c] < 0 ? gain[c] + 0.2 : gain[c] * 0.8;
      gain[c] = Math.max(gain[c], 0.01);
      step[c] = momentum * step[c] - lr * gain[c] * gradient[c];
      y[c] += step[c];
    }
  }
  return y;
}

/**
 * The leading principal axes of the data (unit vectors, sign free), by power iteration
 * with deflation on the float64 covariance: an independent check of lib/tsne/pca.ts.
 */
export function principalAxes(
  data: ArrayLike<number>,
  shape: DataShape & { count: number },
): Float64Array[] {
  const { n, dim, count } = shape;
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let c = 0; c < dim; c++) mean[c] += data[i * dim + c] / n;
  const cov = new Float64Array(dim * dim);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < dim; a++) {
      for (let b = 0; b < dim; b++) {
        cov[a * dim + b] += (data[i * dim + a] - mean[a]) * (data[i * dim + b] - mean[b]);
      }
    }
  }
  const axes: Float64Array[] = [];
  for (let m = 0; m < count; m++) {
    let v = Float64Array.from({ length: dim }, (_, c) => 1 + c * 0.1);
    for (let it = 0; it < 10000; it++) {
      const next = new Float64Array(dim);
      for (let a = 0; a < dim; a++) {
        for (let b = 0; b < dim; b++) next[a] += cov[a * dim + b] * v[b];
      }
      for (const u of axes) {
        const d = u.reduce((s, x, c) => s + x * next[c], 0);
        for (let c = 0; c < dim; c++) next[c] -= d * u[c];
      }
      const norm = Math.hypot(...next);
      const change = next.reduce((s, x, c) => s + (x / norm - v[c]) ** 2, 0);
      v = next.map((x) => x / norm);
      if (change < 1e-28) break;
    }
    axes.push(v);
  }
  return axes;
}
