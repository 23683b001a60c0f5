/**
 * PCA for t-SNE's initialization, in float64 on the CPU.
 * @module
 */

import { random } from "../random.ts";

/**
 * scikit-learn's init="pca": the data's projection on its 2 leading principal components,
 * scaled so that the first column has standard deviation 1e-4. Each component's sign makes
 * its largest loading positive. In float64 on the CPU: O(n dim^2) for the covariance, then
 * subspace iteration (seeded start) for the leading eigenvectors. Constant data (no
 * spread) falls back to seeded normal noise of std 1e-4.
 *
 * @example
 * ```ts
 * import { pcaInit } from "./pca.ts";
 *
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
