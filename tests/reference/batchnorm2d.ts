/**
 * BatchNorm2d (with an optional fused ReLU) in float64, the plain loops of PyTorch's
 * semantics, to check kernels/batchnorm2d.wgsl and to compose a whole training step.
 * Tensors are flat arrays in NCHW order.
 * @module
 */

/** [N, C, H, W]. */
export type Shape4 = readonly [number, number, number, number];

/** What the training forward produces and saves. */
export interface BatchNormTrainResult {
  /** y [N,C,H,W] = relu?((x - mean) * invstd * weight + bias). */
  y: Float64Array;
  /** Batch mean per channel [C]. */
  mean: Float64Array;
  /** 1 / sqrt(biased batch variance + eps) per channel [C]. */
  invstd: Float64Array;
  /** running_mean after the update: (1 - momentum) * running_mean + momentum * mean. */
  runningMean: Float64Array;
  /** running_var after the update, with the unbiased variance (M / (M - 1)). */
  runningVar: Float64Array;
}

/** Options shared by the BatchNorm references (PyTorch's defaults). */
export interface BatchNormOptions {
  eps?: number;
  momentum?: number;
  /** Apply a ReLU to the output (the fused BatchNorm2d+ReLU layer). */
  relu?: boolean;
}

/**
 * The training forward: normalizes with the batch statistics (biased variance) and updates
 * the running statistics (unbiased variance), as `torch.nn.BatchNorm2d` in train mode.
 */
export function batchnorm2dTrainForward(
  input: { x: ArrayLike<number>; shape: Shape4 },
  params: {
    weight: ArrayLike<number>;
    bias: ArrayLike<number>;
    runningMean: ArrayLike<number>;
    runningVar: ArrayLike<number>;
  },
  options: BatchNormOptions = {},
): BatchNormTrainResult {
  const { x, shape } = input;
  const [n, c, h, w] = shape;
  const plane = h * w, m = n * plane;
  const eps = options.eps ?? 1e-5, momentum = options.momentum ?? 0.1;
  const mean = new Float64Array(c), invstd = new Float64Array(c);
  const runningMean = new Float64Array(c), runningVar = new Float64Array(c);
  const y = new Float64Array(n * c * plane);
  for (let ch = 0; ch < c; ch++) {
    let sum = 0;
    for (let b = 0; b < n; b++) {
      for (let p = 0; p < plane; p++) sum += x[(b * c + ch) * plane + p];
    }
    const mu = sum / m;
    let squares = 0;
    for (let b = 0; b < n; b++) {
      for (let p = 0; p < plane; p++) squares += (x[(b * c + ch) * plane + p] - mu) ** 2;
    }
    const variance = squares / m;
    mean[ch] = mu;
    invstd[ch] = 1 / Math.sqrt(variance + eps);
    runningMean[ch] = (1 - momentum) * params.runningMean[ch] + momentum * mu;
    runningVar[ch] = (1 - momentum) * params.runningVar[ch] + momentum * variance * m / (m - 1);
    for (let b = 0; b < n; b++) {
      for (let p = 0; p < plane; p++) {
        const i = (b * c + ch) * plane + p;
        const v = (x[i] - mu) * invstd[ch] * params.weight[ch] + params.bias[ch];
        y[i] = options.relu ? Math.max(v, 0) : v;
      }
    }
  }
  return { y, mean, invstd, runningMean, runningVar };
}

/** The eval forward: y = relu?((x - running_mean) / sqrt(running_var + eps) * weight + bias). */
export function batchnorm2dEvalForward(
  input: { x: ArrayLike<number>; shape: Shape4 },
  params: {
    weight: ArrayLike<number>;
    bias: ArrayLike<number>;
    runningMean: ArrayLike<number>;
    runningVar: ArrayLike<number>;
  },
  options: BatchNormOptions = {},
): Float64Array {
  const [n, c, h, w] = input.shape;
  const plane = h * w, eps = options.eps ?? 1e-5;
  const y = new Float64Array(n * c * plane);
  for (let i = 0; i < y.length; i++) {
    const ch = Math.floor(i / plane) % c;
    const v = (input.x[i] - params.runningMean[ch]) / Math.sqrt(params.runningVar[ch] + eps) *
        params.weight[ch] + params.bias[ch];
    y[i] = options.relu ? Math.max(v, 0) : v;
  }
  return y;
}

/**
 * The training backward, given the forward's input, output (for the ReLU mask) and saved
 * statistics. With g = dy * (y > 0 when relu) and xhat = (x - mean) * invstd:
 * dbias = sum g, dweight = sum g * xhat, dx = weight * invstd / M * (M g - dbias - xhat dweight).
 */
export function batchnorm2dBackward(
  saved: {
    x: ArrayLike<number>;
    y: ArrayLike<number>;
    shape: Shape4;
    mean: ArrayLike<number>;
    invstd: ArrayLike<number>;
  },
  grads: { dy: ArrayLike<number>; weight: ArrayLike<number> },
  options: { relu?: boolean } = {},
): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const [n, c, h, w] = saved.shape;
  const plane = h * w, m = n * plane;
  const dx = new Float64Array(n * c * plane);
  const dweight = new Float64Array(c), dbias = new Float64Array(c);
  const g = (i: number) => options.relu && !(saved.y[i] > 0) ? 0 : grads.dy[i];
  for (let ch = 0; ch < c; ch++) {
    const mu = saved.mean[ch], is = saved.invstd[ch];
    let sumG = 0, sumGX = 0;
    for (let b = 0; b < n; b++) {
      for (let p = 0; p < plane; p++) {
        const i = (b * c + ch) * plane + p;
        sumG += g(i);
        sumGX += g(i) * (saved.x[i] - mu) * is;
      }
    }
    dbias[ch] = sumG;
    dweight[ch] = sumGX;
    const k = grads.weight[ch] * is / m;
    for (let b = 0; b < n; b++) {
      for (let p = 0; p < plane; p++) {
        const i = (b * c + ch) * plane + p;
        dx[i] = k * (m * g(i) - sumG - (saved.x[i] - mu) * is * sumGX);
      }
    }
  }
  return { dx, dweight, dbias };
}
