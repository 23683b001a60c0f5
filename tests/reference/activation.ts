/**
 * Tanh and Sigmoid in float64, to check kernels/activation.wgsl and to compose a whole
 * training step. The backward takes the forward's output y, as the kernels (and PyTorch) do.
 * @module
 */

/** y = tanh(x), elementwise. */
export function tanhForward(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, Math.tanh);
}

/** dx = dy * (1 - y^2), with y = tanh(x) the forward's output. */
export function tanhBackward(y: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(y, (v, i) => dy[i] * (1 - v * v));
}

/** y = 1 / (1 + exp(-x)), elementwise. */
export function sigmoidForward(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => 1 / (1 + Math.exp(-v)));
}

/** dx = dy * y * (1 - y), with y = sigmoid(x) the forward's output. */
export function sigmoidBackward(y: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(y, (v, i) => dy[i] * v * (1 - v));
}
