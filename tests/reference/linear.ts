/**
 * Linear (fully connected) in float64, to check kernels/linear.wgsl and to compose a whole
 * training step. Layouts as PyTorch: x [N,IN], weight [OUT,IN], bias [OUT], y [N,OUT].
 * @module
 */

/** Sizes of a linear layer applied to a batch. */
export interface LinearShape {
  batch: number;
  inFeatures: number;
  outFeatures: number;
}

/** y[n,o] = bias[o] + sum_i x[n,i] * weight[o,i]. */
export function linearForward(
  input: { x: ArrayLike<number>; weight: ArrayLike<number>; bias: ArrayLike<number> },
  shape: LinearShape,
): Float64Array {
  const { batch, inFeatures: ins, outFeatures: outs } = shape;
  const { x, weight, bias } = input;
  const y = new Float64Array(batch * outs);
  for (let n = 0; n < batch; n++) {
    for (let o = 0; o < outs; o++) {
      let sum = bias[o];
      for (let i = 0; i < ins; i++) sum += x[n * ins + i] * weight[o * ins + i];
      y[n * outs + o] = sum;
    }
  }
  return y;
}

/** dx = dy W [N,IN], dweight = dy^T x [OUT,IN], dbias = sum over n of dy [OUT]. */
export function linearBackward(
  input: { x: ArrayLike<number>; weight: ArrayLike<number>; dy: ArrayLike<number> },
  shape: LinearShape,
): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const { batch, inFeatures: ins, outFeatures: outs } = shape;
  const { x, weight, dy } = input;
  const dx = new Float64Array(batch * ins);
  const dweight = new Float64Array(outs * ins);
  const dbias = new Float64Array(outs);
  for (let n = 0; n < batch; n++) {
    for (let o = 0; o < outs; o++) {
      const g = dy[n * outs + o];
      dbias[o] += g;
      for (let i = 0; i < ins; i++) {
        dx[n * ins + i] += g * weight[o * ins + i];
        dweight[o * ins + i] += g * x[n * ins + i];
      }
    }
  }
  return { dx, dweight, dbias };
}
