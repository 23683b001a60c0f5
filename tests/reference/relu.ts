/**
 * ReLU in float64, to check kernels/relu.wgsl and to compose a whole training step.
 * @module
 */

/** y = max(x, 0), elementwise. */
export function reluForward(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => Math.max(v, 0));
}

/** dx = dy where x > 0, else 0 (PyTorch's gradient at x == 0 is 0). */
export function reluBackward(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => v > 0 ? dy[i] : 0);
}
