/**
 * The reference figure for the convolutions: C = A B (the CPU wing's kernels/cpu/matmul.wgsl) at 512^3, the
 * size DESIGN.md's first measurements used, with blocks of 16x16, 8x16 and 8x8 outputs an
 * invocation. The conv2d rows of bench/conv2d_bench.ts and bench:profile read against the
 * best of these rows: how close each convolution gets to this adapter's limit.
 * @module
 */

import { gpuBench } from "./util.ts";
import { tensor, upload } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { matmul } from "../lib/cpu/matmul.ts";

const rt = createRuntime("auto");
const size = 512;

for (const quads of [{ rows: 4, cols: 4 }, { rows: 2, cols: 4 }, { rows: 2, cols: 2 }]) {
  const name = `matmul ${size}^3, ${4 * quads.rows}x${4 * quads.cols} outputs an invocation`;
  gpuBench(name, rt, async (rt) => {
    const a = tensor(rt, [size, size], { label: "A" });
    const b = tensor(rt, [size, size], { label: "B" });
    upload(rt, a, new Float32Array(size * size).fill(0.5));
    upload(rt, b, new Float32Array(size * size).fill(0.25));
    const { ops } = await matmul(rt, a, b, quads);
    return { ops, work: { flops: 2 * size ** 3 } };
  }, { group: "matmul", repeat: 10 });
}
