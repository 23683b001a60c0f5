/**
 * Adaptive average pooling to 1x1 in float64, to check kernels/adaptive_avg_pool2d.wgsl and
 * to compose a whole training step. Tensors are flat arrays in NCHW order.
 * @module
 */

/** x [N,C,H,W] -> y [N,C] (= [N,C,1,1]): y[n,c] = mean over h, w of x[n,c,h,w]. */
export function adaptiveAvgPool2dForward(
  x: ArrayLike<number>,
  shape: readonly [number, number, number, number],
): Float64Array {
  const [n, c, h, w] = shape;
  const plane = h * w;
  const y = new Float64Array(n * c);
  for (let r = 0; r < n * c; r++) {
    let sum = 0;
    for (let p = 0; p < plane; p++) sum += x[r * plane + p];
    y[r] = sum / plane;
  }
  return y;
}

/** dy [N,C] -> dx [N,C,H,W]: dx[n,c,h,w] = dy[n,c] / (H*W). */
export function adaptiveAvgPool2dBackward(
  dy: ArrayLike<number>,
  shape: readonly [number, number, number, number],
): Float64Array {
  const [n, c, h, w] = shape;
  const plane = h * w;
  const dx = new Float64Array(n * c * plane);
  for (let i = 0; i < dx.length; i++) dx[i] = dy[Math.floor(i / plane)] / plane;
  return dx;
}
