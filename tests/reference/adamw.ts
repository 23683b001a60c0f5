/**
 * Reference (float64) of one AdamW step, as torch.optim.AdamW (single-tensor) and
 * kernels/adamw.wgsl.
 * @module
 */

/** Parameters, gradients and the two moments, all of one layout. */
export interface AdamWState {
  p: ArrayLike<number>;
  g: ArrayLike<number>;
  /** exp_avg. */
  m: ArrayLike<number>;
  /** exp_avg_sq. */
  v: ArrayLike<number>;
}

/** The hyperparameters and the step number t (1 for the first step). */
export interface AdamWReferenceOptions {
  t: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/**
 * One AdamW step: p = p (1 - lr wd); m = beta1 m + (1 - beta1) g;
 * v = beta2 v + (1 - beta2) g^2; p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
 * Returns the new p, m, v (the inputs are left as they are).
 */
export function adamwReference(
  state: AdamWState,
  options: AdamWReferenceOptions,
): { p: Float64Array<ArrayBuffer>; m: Float64Array<ArrayBuffer>; v: Float64Array<ArrayBuffer> } {
  const { t, lr, betas: [beta1, beta2], eps, weightDecay } = options;
  const n = state.p.length;
  const p = new Float64Array(n), m = new Float64Array(n), v = new Float64Array(n);
  const biasCorrection1 = 1 - beta1 ** t;
  const biasCorrection2 = 1 - beta2 ** t;
  for (let i = 0; i < n; i++) {
    const g = state.g[i];
    m[i] = beta1 * state.m[i] + (1 - beta1) * g;
    v[i] = beta2 * state.v[i] + (1 - beta2) * g * g;
    const denom = Math.sqrt(v[i]) / Math.sqrt(biasCorrection2) + eps;
    p[i] = state.p[i] * (1 - lr * weightDecay) - (lr / biasCorrection1) * (m[i] / denom);
  }
  return { p, m, v };
}
