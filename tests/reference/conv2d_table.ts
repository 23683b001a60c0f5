/**
 * A Conv2d with a connection table (LeNet-5's C3) in float64: output map k reads only the
 * input maps `table[k]` lists, each through its own R x R kernel; stride 1, no padding. The
 * weight is [E, R, R] with one kernel per connection, connections numbered in table order
 * (k ascending, then the input maps of k ascending). To check kernels/conv2d_table.wgsl.
 * @module
 */

/** The sizes and the table of one table convolution. */
export interface Conv2dTableShape {
  /** Input [N, C, H, W]. */
  x: readonly [number, number, number, number];
  /** `table[k]`: the input maps output map k reads, ascending. K = table.length. */
  table: readonly (readonly number[])[];
  kernelSize: number;
}

/** [N, K, P, Q] with P = H - R + 1, Q = W - R + 1. */
export function conv2dTableOutputShape(shape: Conv2dTableShape): [number, number, number, number] {
  const [n, , h, w] = shape.x;
  const r = shape.kernelSize;
  return [n, shape.table.length, h - r + 1, w - r + 1];
}

/** Calls `body(xi, yi, wi)` for every product x[xi] * w[wi] that contributes to y[yi]. */
function forEachTap(
  shape: Conv2dTableShape,
  body: (xi: number, yi: number, wi: number) => void,
): void {
  const [n, c, h, w] = shape.x;
  const [, k, p, q] = conv2dTableOutputShape(shape);
  const r = shape.kernelSize;
  for (let b = 0; b < n; b++) {
    let e = 0;
    for (let o = 0; o < k; o++) {
      for (const ch of shape.table[o]) {
        if (ch < 0 || ch >= c) throw new Error(`table[${o}] reads map ${ch} of ${c}`);
        for (let i = 0; i < p; i++) {
          for (let j = 0; j < q; j++) {
            const yi = ((b * k + o) * p + i) * q + j;
            for (let u = 0; u < r; u++) {
              for (let v = 0; v < r; v++) {
                body(((b * c + ch) * h + i + u) * w + j + v, yi, (e * r + u) * r + v);
              }
            }
          }
        }
        e++;
      }
    }
  }
}

/** y[n,k,p,q] = b[k] + sum over the connections e = (k, c) of sum_r,s x[n,c,p+r,q+s] * w[e,r,s]. */
export function conv2dTableForward(
  shape: Conv2dTableShape,
  tensors: { x: ArrayLike<number>; weight: ArrayLike<number>; bias: ArrayLike<number> },
): Float64Array {
  const [n, k, p, q] = conv2dTableOutputShape(shape);
  const y = new Float64Array(n * k * p * q);
  for (let i = 0; i < y.length; i++) y[i] = tensors.bias[Math.floor(i / (p * q)) % k];
  const { x, weight } = tensors;
  forEachTap(shape, (xi, yi, wi) => y[yi] += x[xi] * weight[wi]);
  return y;
}

/** dx[n,c,h,w] = sum over the connections e = (k, c) and taps that read x[n,c,h,w] of dy[n,k,p,q] * w[e,r,s]. */
export function conv2dTableBackwardInput(
  shape: Conv2dTableShape,
  tensors: { dy: ArrayLike<number>; weight: ArrayLike<number> },
): Float64Array {
  const dx = new Float64Array(shape.x.reduce((a, b) => a * b, 1));
  const { dy, weight } = tensors;
  forEachTap(shape, (xi, yi, wi) => dx[xi] += dy[yi] * weight[wi]);
  return dx;
}

/** dw[e,r,s] = sum_n,p,q dy[n,k,p,q] * x[n,c,p+r,q+s] for e = (k, c); db[k] = sum_n,p,q dy[n,k,p,q]. */
export function conv2dTableBackwardWeight(
  shape: Conv2dTableShape,
  tensors: { x: ArrayLike<number>; dy: ArrayLike<number> },
): { dw: Float64Array; db: Float64Array } {
  const [, k, p, q] = conv2dTableOutputShape(shape);
  const connections = shape.table.reduce((a, row) => a + row.length, 0);
  const dw = new Float64Array(connections * shape.kernelSize * shape.kernelSize);
  const db = new Float64Array(k);
  const { x, dy } = tensors;
  forEachTap(shape, (xi, yi, wi) => dw[wi] += dy[yi] * x[xi]);
  for (let i = 0; i < dy.length; i++) db[Math.floor(i / (p * q)) % k] += dy[i];
  return { dw, db };
}

/**
 * The dense Conv2d weight [K, C, R, R] equal to a table weight [E, R, R]: each connection's
 * kernel at (k, c), zeros where the table has no connection.
 */
export function denseWeightOfTable(
  shape: Conv2dTableShape,
  weight: ArrayLike<number>,
): Float64Array {
  const c = shape.x[1];
  const rr = shape.kernelSize * shape.kernelSize;
  const dense = new Float64Array(shape.table.length * c * rr);
  let e = 0;
  shape.table.forEach((inputs, k) => {
    for (const ch of inputs) {
      for (let t = 0; t < rr; t++) dense[(k * c + ch) * rr + t] = weight[e * rr + t];
      e++;
    }
  });
  return dense;
}
