/**
 * AvgPool2d and MaxPool2d in float64 (PyTorch's semantics: square window, no padding,
 * floor mode), to check kernels/pool2d.wgsl and to compose a whole training step.
 * Tensors are flat arrays in NCHW order.
 * @module
 */

/** The sizes of one pooling: input [N, C, H, W], window R x R, stride S. */
export interface Pool2dShape {
  x: readonly [number, number, number, number];
  kernelSize: number;
  stride: number;
}

/**
 * The output shape [N, C, P, Q] with P = floor((H - R) / S) + 1.
 *
 * @example
 * ```ts
 * pool2dOutputShape({ x: [32, 6, 28, 28], kernelSize: 2, stride: 2 }); // [32, 6, 14, 14]
 * ```
 */
export function pool2dOutputShape(shape: Pool2dShape): [number, number, number, number] {
  const [n, c, h, w] = shape.x;
  const side = (size: number) => Math.floor((size - shape.kernelSize) / shape.stride) + 1;
  return [n, c, side(h), side(w)];
}

/** Calls `body(yi, xi, pi)` for every input x[xi] in the window of output y[yi], in row-major order; pi = h*W + w. */
function forEachWindowTap(
  shape: Pool2dShape,
  body: (yi: number, xi: number, pi: number) => void,
): void {
  const [n, c, h, w] = shape.x;
  const [, , p, q] = pool2dOutputShape(shape);
  const { kernelSize: r, stride } = shape;
  for (let plane = 0; plane < n * c; plane++) {
    for (let i = 0; i < p; i++) {
      for (let j = 0; j < q; j++) {
        const yi = (plane * p + i) * q + j;
        for (let u = 0; u < r; u++) {
          for (let v = 0; v < r; v++) {
            const pi = (i * stride + u) * w + j * stride + v;
            body(yi, plane * h * w + pi, pi);
          }
        }
      }
    }
  }
}

/** y[n,c,p,q] = (1 / R^2) sum_r,s x[n,c,p*S+r,q*S+s]. */
export function avgPool2dForward(x: ArrayLike<number>, shape: Pool2dShape): Float64Array {
  const y = new Float64Array(pool2dOutputShape(shape).reduce((a, b) => a * b, 1));
  const area = shape.kernelSize * shape.kernelSize;
  forEachWindowTap(shape, (yi, xi) => y[yi] += x[xi] / area);
  return y;
}

/** dx[n,c,h,w] = sum over the windows (p,q) that hold (h,w) of dy[n,c,p,q] / R^2 (0 outside every window). */
export function avgPool2dBackward(dy: ArrayLike<number>, shape: Pool2dShape): Float64Array {
  const dx = new Float64Array(shape.x.reduce((a, b) => a * b, 1));
  const area = shape.kernelSize * shape.kernelSize;
  forEachWindowTap(shape, (yi, xi) => dx[xi] += dy[yi] / area);
  return dx;
}

/**
 * y[n,c,p,q] = max over the window; `indices` holds where the max is, as h*W + w within the
 * plane (PyTorch's `return_indices`): the first one in row-major order when several are equal.
 */
export function maxPool2dForward(
  x: ArrayLike<number>,
  shape: Pool2dShape,
): { y: Float64Array; indices: Int32Array } {
  const count = pool2dOutputShape(shape).reduce((a, b) => a * b, 1);
  const y = new Float64Array(count).fill(-Infinity);
  const indices = new Int32Array(count).fill(-1);
  forEachWindowTap(shape, (yi, xi, pi) => {
    if (x[xi] > y[yi]) {
      y[yi] = x[xi];
      indices[yi] = pi;
    }
  });
  return { y, indices };
}

/** dx[n,c,h,w] = sum over the windows (p,q) whose max is at (h,w) of dy[n,c,p,q]. */
export function maxPool2dBackward(
  dy: ArrayLike<number>,
  indices: ArrayLike<number>,
  shape: Pool2dShape,
): Float64Array {
  const [n, c, h, w] = shape.x;
  const [, , p, q] = pool2dOutputShape(shape);
  const dx = new Float64Array(n * c * h * w);
  for (let yi = 0; yi < dy.length; yi++) {
    dx[Math.floor(yi / (p * q)) * h * w + indices[yi]] += dy[yi];
  }
  return dx;
}
