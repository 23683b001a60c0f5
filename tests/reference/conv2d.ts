/**
 * Conv2d in float64, the textbook loops of `torch.nn.Conv2d` (square kernel, zero padding,
 * no dilation or groups), to check kernels/conv2d*.wgsl and to compose a whole training step.
 * Tensors are flat arrays in NCHW order; the weight is [K,C,R,R] as in PyTorch.
 * @module
 */

/** [N, C, H, W] or [K, C, R, R]. */
export type Shape4 = readonly [number, number, number, number];

/** The sizes of one convolution. */
export interface Conv2dShape {
  /** Input [N, C, H, W]. */
  x: Shape4;
  /** Weight [K, C, R, R]. */
  weight: Shape4;
  stride: number;
  padding: number;
}

/**
 * The output shape [N, K, P, Q] with P = floor((H + 2 pad - R) / stride) + 1.
 *
 * @example
 * ```ts
 * conv2dOutputShape({ x: [32, 1, 28, 28], weight: [16, 1, 4, 4], stride: 2, padding: 0 });
 * // [32, 16, 13, 13]
 * ```
 */
export function conv2dOutputShape(shape: Conv2dShape): Shape4 {
  const [n, , h, w] = shape.x;
  const [k, , r] = shape.weight;
  const { stride, padding } = shape;
  const p = Math.floor((h + 2 * padding - r) / stride) + 1;
  const q = Math.floor((w + 2 * padding - r) / stride) + 1;
  return [n, k, p, q];
}

/** Calls `body(xi, yi, wi)` for every product x[xi] * w[wi] that contributes to y[yi]. */
function forEachTap(shape: Conv2dShape, body: (xi: number, yi: number, wi: number) => void): void {
  const [n, c, h, w] = shape.x;
  const [k, , r] = shape.weight;
  const [, , p, q] = conv2dOutputShape(shape);
  const { stride, padding } = shape;
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < k; o++) {
      for (let i = 0; i < p; i++) {
        for (let j = 0; j < q; j++) {
          const yi = ((b * k + o) * p + i) * q + j;
          for (let ch = 0; ch < c; ch++) {
            for (let u = 0; u < r; u++) {
              const hh = i * stride + u - padding;
              if (hh < 0 || hh >= h) continue;
              for (let v = 0; v < r; v++) {
                const ww = j * stride + v - padding;
                if (ww < 0 || ww >= w) continue;
                body(((b * c + ch) * h + hh) * w + ww, yi, ((o * c + ch) * r + u) * r + v);
              }
            }
          }
        }
      }
    }
  }
}

/** y [N,K,P,Q] = b[k] + sum_c,r,s x[n,c,p*S+r-pad,q*S+s-pad] * w[k,c,r,s]. */
export function conv2dForward(
  shape: Conv2dShape,
  tensors: { x: ArrayLike<number>; weight: ArrayLike<number>; bias: ArrayLike<number> },
): Float64Array {
  const [n, k, p, q] = conv2dOutputShape(shape);
  const y = new Float64Array(n * k * p * q);
  for (let i = 0; i < y.length; i++) y[i] = tensors.bias[Math.floor(i / (p * q)) % k];
  const { x, weight } = tensors;
  forEachTap(shape, (xi, yi, wi) => y[yi] += x[xi] * weight[wi]);
  return y;
}

/** dx [N,C,H,W]: dx[n,c,h,w] = sum over the taps (k,r,s) that read x[n,c,h,w] of dy[n,k,p,q] * w[k,c,r,s]. */
export function conv2dBackwardInput(
  shape: Conv2dShape,
  tensors: { dy: ArrayLike<number>; weight: ArrayLike<number> },
): Float64Array {
  const [n, c, h, w] = shape.x;
  const dx = new Float64Array(n * c * h * w);
  const { dy, weight } = tensors;
  forEachTap(shape, (xi, yi, wi) => dx[xi] += dy[yi] * weight[wi]);
  return dx;
}

/**
 * dw [K,C,R,R]: dw[k,c,r,s] = sum_n,p,q dy[n,k,p,q] * x[n,c,p*S+r-pad,q*S+s-pad], and
 * db [K]: db[k] = sum_n,p,q dy[n,k,p,q].
 */
export function conv2dBackwardWeight(
  shape: Conv2dShape,
  tensors: { x: ArrayLike<number>; dy: ArrayLike<number> },
): { dw: Float64Array; db: Float64Array } {
  const [k, c, r] = shape.weight;
  const [, , p, q] = conv2dOutputShape(shape);
  const dw = new Float64Array(k * c * r * r);
  const db = new Float64Array(k);
  const { x, dy } = tensors;
  forEachTap(shape, (xi, yi, wi) => dw[wi] += dy[yi] * x[xi]);
  for (let i = 0; i < dy.length; i++) db[Math.floor(i / (p * q)) % k] += dy[i];
  return { dw, db };
}
