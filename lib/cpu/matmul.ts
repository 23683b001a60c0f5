/**
 * The matrix product C = A B of kernels/cpu/matmul.wgsl: not used in training, it is the
 * reference figure (bench/matmul_bench.ts) that says how fast this adapter can multiply and
 * add when loads are made as cheap as they can be, so that each convolution's GFLOP/s can be
 * read against it.
 * @module
 */

import { grid, type Op, op, type Runtime, type Tensor, tensor, uniform } from "../runtime.ts";
import { cpuKernel, textureMirror } from "./texture.ts";

/** Invocations per workgroup: few, so that small products still spread over every core. */
const WORKGROUP = 8;

/** The ops of one product: refresh the operands' texture mirrors, then multiply. */
export interface Matmul {
  /** Copies of A and B into their mirrors, then the product into `c`. */
  ops: Op[];
  c: Tensor;
}

/**
 * Makes C [M,N] = A [M,K] B [K,N] (row-major tensors with buffers of their own; K and N
 * multiples of 4). `quads` sets the block of C an invocation computes: 4*rows x 4*cols.
 *
 * @example
 * ```ts
 * import { readback, requestRuntime, submit, tensor, upload } from "../runtime.ts";
 *
 * const rt = await requestRuntime("auto");
 * const a = tensor(rt, [4, 4], { label: "A" }), b = tensor(rt, [4, 4], { label: "B" });
 * upload(rt, a, Float32Array.from({ length: 16 }, (_, i) => i));
 * upload(rt, b, Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0)));
 * const { ops, c } = await matmul(rt, a, b); // B is the identity
 * submit(rt, ops);
 * console.log(await readback(rt, c)); // A: 0, 1, ..., 15
 * ```
 */
export async function matmul(
  rt: Runtime,
  a: Tensor,
  b: Tensor,
  quads: { rows: number; cols: number } = { rows: 4, cols: 4 },
): Promise<Matmul> {
  const [m, k] = a.shape;
  const [k2, n] = b.shape;
  if (a.shape.length !== 2 || b.shape.length !== 2 || k !== k2) {
    throw new Error(`matmul: A [${a.shape}] and B [${b.shape}] do not multiply`);
  }
  if (k % 4 !== 0 || n % 4 !== 0) {
    throw new Error(`matmul: K = ${k} and N = ${n} must be multiples of 4`);
  }
  for (const q of [quads.rows, quads.cols]) {
    if (![1, 2, 4].includes(q)) throw new Error(`matmul: quads must be 1, 2 or 4, got ${q}`);
  }
  const forward = await cpuKernel(rt, "matmul.wgsl", "forward", {
    WORKGROUP,
    ROW_QUADS: quads.rows,
    COL_QUADS: quads.cols,
  });
  const c = tensor(rt, [m, n], { label: "matmul C" });
  const at = textureMirror(rt, a);
  const bt = textureMirror(rt, b);
  const blocks = Math.ceil(m / (4 * quads.rows)) * Math.ceil(n / (4 * quads.cols));
  const product = op(
    rt,
    forward,
    [at, bt, c, uniform(rt, "matmul", { m, n, k })],
    grid(blocks, WORKGROUP),
  );
  return { ops: [at.copy, bt.copy, product], c };
}
