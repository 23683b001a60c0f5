import { assertClose, type Tolerance } from "./util/assert_close.ts";
import { gpuTest, random, randomArray, tensorFrom, testRuntime } from "./util/gpu.ts";
import type { Random } from "../lib/random.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dForward,
  conv2dOutputShape,
  type Conv2dShape,
} from "./reference/conv2d.ts";
import { conv2d } from "../lib/layers/conv2d.ts";
import type { LayerOps } from "../lib/layers/layer.ts";
import { buildLayer, PLAIN_TIER, type Tier, type TierName } from "../lib/tier.ts";
import { CPU_TIER } from "../lib/cpu/tier.ts";
import {
  idle,
  numel,
  readback,
  type Runtime,
  submit,
  type Tensor,
  upload,
  view,
} from "../lib/runtime.ts";

/** Which tier's kernels a case runs: "plain" (the reference) or "cpu" (the tuned wing). */
type Kernels = TierName;
const TIER_OF: Record<TierName, Tier> = { plain: PLAIN_TIER, cpu: CPU_TIER };

/** randomArray, typed for upload() (randomArray's declared type allows a shared buffer). */
function floats(rng: Random, n: number): Float32Array<ArrayBuffer> {
  return new Float32Array(randomArray(rng, n));
}

/** A case: the input shape [N,C,H,W], K output channels, kernel R, stride, padding. */
interface Case {
  x: [number, number, number, number];
  k: number;
  r: number;
  stride: number;
  padding: number;
}

function shapeOf(c: Case): Conv2dShape {
  return { x: c.x, weight: [c.k, c.x[1], c.r, c.r], stride: c.stride, padding: c.padding };
}

function label(c: Case): string {
  return `x [${c.x}] K ${c.k} R ${c.r} S ${c.stride} pad ${c.padding}`;
}

/** The layer's tensors on the GPU, laid out as a model lays them out. */
interface Bound {
  rt: Runtime;
  x: Tensor;
  y: Tensor;
  dy: Tensor;
  dx: Tensor;
  weight: Tensor;
  bias: Tensor;
  dweight: Tensor;
  dbias: Tensor;
  /** The flat parameter and gradient buffers the views above live in. */
  flat: Tensor;
  flatGrad: Tensor;
  ops: LayerOps;
}

const ALIGN = 64;
const aligned = (n: number) => Math.ceil(n / ALIGN) * ALIGN;
const SENTINEL = 12345;

/**
 * Builds the layer for `c`: weight and bias are views at offsets 64 and after into one flat
 * buffer (gradients likewise, so dw and db are two writable views of one buffer), and every
 * float of the flat buffers outside the views holds a sentinel that must survive.
 */
async function bind(c: Case, kernels: Kernels): Promise<Bound> {
  const rt = await testRuntime();
  const shape = shapeOf(c);
  const yShape = [...conv2dOutputShape(shape)];
  const wSize = numel(shape.weight);
  const flatSize = ALIGN + aligned(wSize) + aligned(c.k);
  const fill = new Float32Array(flatSize).fill(SENTINEL);
  const flat = tensorFrom(rt, [flatSize], fill, "flat params");
  const flatGrad = tensorFrom(rt, [flatSize], fill, "flat grads");
  const wOffset = ALIGN, bOffset = ALIGN + aligned(wSize);
  const b: Omit<Bound, "ops"> = {
    rt,
    x: tensorFrom(rt, [...c.x], new Float32Array(numel(c.x)), "x"),
    y: tensorFrom(rt, yShape, new Float32Array(numel(yShape)), "y"),
    dy: tensorFrom(rt, yShape, new Float32Array(numel(yShape)), "dy"),
    dx: tensorFrom(rt, [...c.x], new Float32Array(numel(c.x)), "dx"),
    weight: view(flat, wOffset, [...shape.weight], "weight"),
    bias: view(flat, bOffset, [c.k], "bias"),
    dweight: view(flatGrad, wOffset, [...shape.weight], "dweight"),
    dbias: view(flatGrad, bOffset, [c.k], "dbias"),
    flat,
    flatGrad,
  };
  const layer = conv2d({
    inChannels: c.x[1],
    outChannels: c.k,
    kernelSize: c.r,
    stride: c.stride,
    padding: c.padding,
  });
  const ops = await buildLayer(TIER_OF[kernels], layer, {
    rt,
    x: b.x,
    y: b.y,
    dy: b.dy,
    dx: b.dx,
    params: { weight: b.weight, bias: b.bias },
    grads: { weight: b.dweight, bias: b.dbias },
  });
  return { ...b, ops };
}

interface Data {
  x: Float32Array<ArrayBuffer>;
  weight: Float32Array<ArrayBuffer>;
  bias: Float32Array<ArrayBuffer>;
  dy: Float32Array<ArrayBuffer>;
}

function randomData(c: Case, seed: number): Data {
  const rng = random(seed);
  const shape = shapeOf(c);
  return {
    x: floats(rng, numel(c.x)),
    weight: floats(rng, numel(shape.weight)),
    bias: floats(rng, c.k),
    dy: floats(rng, numel(conv2dOutputShape(shape))),
  };
}

/** Runs forward then backward on `data`; outputs are NaN-filled first so a skipped store shows. */
async function run(b: Bound, data: Data) {
  const { rt } = b;
  upload(rt, b.x, data.x);
  upload(rt, b.weight, data.weight);
  upload(rt, b.bias, data.bias);
  upload(rt, b.dy, data.dy);
  upload(rt, b.y, new Float32Array(b.y.size).fill(NaN));
  upload(rt, b.dx, new Float32Array(b.dx.size).fill(NaN));
  upload(rt, b.dweight, new Float32Array(b.dweight.size).fill(NaN));
  upload(rt, b.dbias, new Float32Array(b.dbias.size).fill(NaN));
  submit(rt, [...b.ops.train, ...b.ops.backward]);
  await idle(rt);
  const flatGrad = await readback(rt, b.flatGrad);
  const outside = flatGrad.filter((_, i) =>
    !(i >= b.dweight.offset && i < b.dweight.offset + b.dweight.size) &&
    !(i >= b.dbias.offset && i < b.dbias.offset + b.dbias.size)
  );
  if (outside.some((v) => v !== SENTINEL)) {
    throw new Error("backward_weight wrote outside the dw and db views");
  }
  return {
    y: await readback(rt, b.y),
    dx: await readback(rt, b.dx),
    dw: flatGrad.slice(b.dweight.offset, b.dweight.offset + b.dweight.size),
    db: flatGrad.slice(b.dbias.offset, b.dbias.offset + b.dbias.size),
  };
}

/**
 * f32 against float64 for sums of `terms` products of values in [-1, 1]: each partial sum
 * is O(sqrt(terms)) and rounds by 2^-24 of it, so the error grows like terms * 6e-8; the
 * tolerance allows 16 times that (plus 1e-6 for short sums).
 */
function sumTolerance(terms: number): Tolerance {
  return { atol: 1e-6 + 16 * 6e-8 * terms, rtol: 1e-5 };
}

/** Checks forward, backward_input and backward_weight of `kernels` against the reference. */
async function checkAgainstReference(c: Case, kernels: Kernels, seed = 1) {
  const shape = shapeOf(c);
  const data = randomData(c, seed);
  const got = await run(await bind(c, kernels), data);
  const [n, k, p, q] = conv2dOutputShape(shape);
  const taps = c.x[1] * c.r * c.r;
  const name = `${kernels} ${label(c)}`;
  assertClose(got.y, conv2dForward(shape, data), sumTolerance(taps), `${name}: y`);
  assertClose(
    got.dx,
    conv2dBackwardInput(shape, data),
    sumTolerance(k * c.r * c.r),
    `${name}: dx`,
  );
  const want = conv2dBackwardWeight(shape, data);
  assertClose(got.dw, want.dw, sumTolerance(n * p * q), `${name}: dw`);
  assertClose(got.db, want.db, sumTolerance(n * p * q), `${name}: db`);
}

const kinds: Kernels[] = ["plain", "cpu"];

Deno.test(
  "conv2d forward and backward match the reference at batch 1, 3 and 33",
  gpuTest,
  async () => {
    // Batches that leave a group of four images partial (the wing's kernels pack x and dy in
    // groups of 4), and images of 81, 550 and 98 floats: not whole texels, so pack takes its
    // unaligned path.
    for (const kernels of kinds) {
      await checkAgainstReference({ x: [1, 3, 9, 9], k: 5, r: 3, stride: 1, padding: 0 }, kernels);
      await checkAgainstReference(
        { x: [3, 5, 11, 10], k: 11, r: 3, stride: 2, padding: 1 },
        kernels,
      );
      await checkAgainstReference({ x: [33, 2, 7, 7], k: 3, r: 2, stride: 1, padding: 1 }, kernels);
    }
  },
);

Deno.test(
  "conv2d matches the reference when the stride skips or exceeds the kernel, and for 1x1 kernels",
  gpuTest,
  async () => {
    for (const kernels of kinds) {
      // Stride 3 over a 2x2 kernel: some input pixels are read by no tap, their dx is 0.
      await checkAgainstReference({ x: [2, 3, 10, 8], k: 4, r: 2, stride: 3, padding: 0 }, kernels);
      // Stride 2, kernel 3, padding 2: odd taps per phase and output pixels in the padding.
      await checkAgainstReference({ x: [3, 4, 6, 9], k: 9, r: 3, stride: 2, padding: 2 }, kernels);
      // 1x1 kernel with padding: border outputs are bias only.
      await checkAgainstReference({ x: [2, 9, 4, 5], k: 7, r: 1, stride: 1, padding: 1 }, kernels);
      // 20 input channels (backward_input's widest block, 3 quads past C); 3 columns of dw.
      await checkAgainstReference({ x: [2, 20, 5, 6], k: 3, r: 1, stride: 1, padding: 0 }, kernels);
      await checkAgainstReference({ x: [3, 3, 6, 6], k: 17, r: 1, stride: 2, padding: 1 }, kernels);
    }
  },
);

Deno.test(
  "conv2d matches the reference at the LeNet shapes: 5x5, padding 2, 1x1 outputs",
  gpuTest,
  async () => {
    for (const kernels of kinds) {
      await checkAgainstReference(
        { x: [3, 1, 28, 28], k: 6, r: 5, stride: 1, padding: 2 },
        kernels,
      );
      await checkAgainstReference(
        { x: [5, 6, 14, 14], k: 16, r: 5, stride: 1, padding: 0 },
        kernels,
      );
      // Output 1x1: the reduction of backward_weight has only N rows of one pixel.
      await checkAgainstReference(
        { x: [7, 16, 5, 5], k: 120, r: 5, stride: 1, padding: 0 },
        kernels,
      );
    }
  },
);

Deno.test(
  "conv2d forward's runs of 4 pixels (at most 8 channels) match the reference",
  gpuTest,
  async () => {
    // The wing computes 4 output pixels an invocation where K <= 8, and stores them as one
    // vec4 per (image, channel) where the plane P*Q is a multiple of 4 (forward_runs).
    for (const kernels of kinds) {
      // Plane 8x8 (runs), 5 images (a partial group), K = 6 (a half-used channel quad).
      await checkAgainstReference({ x: [5, 2, 8, 8], k: 6, r: 3, stride: 1, padding: 1 }, kernels);
      // Plane 7x7 = 49 (odd: the last invocation has 1 pixel), K = 2.
      await checkAgainstReference({ x: [6, 3, 9, 9], k: 2, r: 3, stride: 1, padding: 0 }, kernels);
      // Plane 5x6 = 30 (2 pixels in the last invocation), stride 2, padding 2, K = 8.
      await checkAgainstReference({ x: [3, 1, 7, 9], k: 8, r: 3, stride: 2, padding: 2 }, kernels);
      // Plane 3x5 = 15 (3 pixels in the last one), batch 9, K = 1.
      await checkAgainstReference({ x: [9, 4, 5, 7], k: 1, r: 3, stride: 1, padding: 0 }, kernels);
    }
  },
);

Deno.test(
  "conv2d backward_weight matches the reference across several workgroups and slices",
  gpuTest,
  async () => {
    // The seed's two convolutions: sums of 5,408 and 800 terms (the plain kernel: 85 and 13
    // terms per invocation of a workgroup; the wing: slices of rows (g, p) whose parts
    // reduce_weight adds, conv2's dw over 32 blocks).
    for (const kernels of kinds) {
      await checkAgainstReference(
        { x: [32, 1, 28, 28], k: 16, r: 4, stride: 2, padding: 0 },
        kernels,
      );
      await checkAgainstReference(
        { x: [32, 16, 13, 13], k: 32, r: 4, stride: 2, padding: 0 },
        kernels,
      );
      // 33 images with padding; K = 13 and C*R*R = 27: blocks of dw cut at both ends.
      await checkAgainstReference(
        { x: [33, 3, 12, 12], k: 13, r: 3, stride: 1, padding: 1 },
        kernels,
      );
    }
  },
);

Deno.test(
  "conv2d CPU-wing kernels match the plain ones and repeat bit for bit",
  gpuTest,
  async () => {
    const c: Case = { x: [32, 16, 13, 13], k: 32, r: 4, stride: 2, padding: 0 };
    const data = randomData(c, 7);
    const fast = await bind(c, "cpu");
    const first = await run(fast, data);
    const second = await run(fast, data);
    for (const key of ["y", "dx", "dw", "db"] as const) {
      assertClose(second[key], first[key], { atol: 0, rtol: 0 }, `cpu ${key} run twice`);
    }
    const plain = await run(await bind(c, "plain"), data);
    // Both are f32 sums of the same products in another order (see sumTolerance).
    assertClose(first.y, plain.y, sumTolerance(16 * 16), "y cpu vs plain");
    assertClose(first.dx, plain.dx, sumTolerance(32 * 4), "dx cpu vs plain");
    assertClose(first.dw, plain.dw, sumTolerance(32 * 25), "dw cpu vs plain");
    assertClose(first.db, plain.db, sumTolerance(32 * 25), "db cpu vs plain");
  },
);

/** Runs the eval forward of `kernels` on `data` and reads y back. */
async function evalForward(c: Case, kernels: Kernels, data: Omit<Data, "dy">) {
  const b = await bind(c, kernels);
  upload(b.rt, b.x, data.x);
  upload(b.rt, b.weight, data.weight);
  upload(b.rt, b.bias, data.bias);
  upload(b.rt, b.y, new Float32Array(b.y.size).fill(NaN));
  submit(b.rt, b.ops.eval);
  return await readback(b.rt, b.y);
}

Deno.test(
  "conv2d eval forward covers LeNet-5's first layer at a batch of 1000",
  gpuTest,
  async () => {
    const c: Case = { x: [1000, 1, 28, 28], k: 6, r: 5, stride: 1, padding: 2 };
    const shape = shapeOf(c);
    const rng = random(3);
    const data = {
      x: floats(rng, numel(c.x)),
      weight: floats(rng, numel(shape.weight)),
      bias: floats(rng, c.k),
    };
    const y = await evalForward(c, "cpu", data);
    // The reference for the first and the last images (each image is computed on its own).
    const images = 3, plane = 28 * 28;
    for (const first of [0, 1000 - images]) {
      const part: Conv2dShape = { ...shape, x: [images, 1, 28, 28] };
      const x = data.x.subarray(first * plane, (first + images) * plane);
      const got = y.subarray(first * 6 * plane, (first + images) * 6 * plane);
      assertClose(got, conv2dForward(part, { ...data, x }), sumTolerance(25), `y ${first}..`);
    }
  },
);

Deno.test(
  "conv2d plain forward runs past 65,535 workgroups in a row (2-D grid)",
  gpuTest,
  async () => {
    // 4,194,304 + 2,048 outputs, one per invocation: 65,568 workgroups of 64, a second grid row.
    // (The wing's kernels index theirs the same way, with many outputs each: far below a row.)
    const c: Case = { x: [1, 1, 2048, 2049], k: 1, r: 1, stride: 1, padding: 0 };
    const shape = shapeOf(c);
    const rng = random(4);
    const data = { x: floats(rng, numel(c.x)), weight: floats(rng, 1), bias: floats(rng, 1) };
    const y = await evalForward(c, "plain", data);
    // One product and the bias: f32 rounding of each of the two operations.
    assertClose(y, conv2dForward(shape, data), { atol: 1e-6, rtol: 1e-6 }, "plain y");
  },
);

Deno.test("conv2d reference backward matches central differences of the reference forward", () => {
  const c: Case = { x: [2, 3, 7, 6], k: 4, r: 3, stride: 2, padding: 1 };
  const shape = shapeOf(c);
  const rng = random(11);
  const data = randomData(c, 11);
  const r = Array.from(randomArray(rng, numel(conv2dOutputShape(shape))));
  // loss = sum(y * r), so dy = r.
  const loss = (d: { x: ArrayLike<number>; weight: ArrayLike<number>; bias: ArrayLike<number> }) =>
    conv2dForward(shape, d).reduce((sum, y, i) => sum + y * r[i], 0);
  const dx = conv2dBackwardInput(shape, { dy: r, weight: data.weight });
  const { dw, db } = conv2dBackwardWeight(shape, { x: data.x, dy: r });
  const eps = 1e-3;
  for (const [name, grad] of [["x", dx], ["weight", dw], ["bias", db]] as const) {
    const base = Array.from(data[name]);
    const numeric = base.map((_, i) => {
      const plus = base.slice(), minus = base.slice();
      plus[i] += eps;
      minus[i] -= eps;
      return (loss({ ...data, [name]: plus }) - loss({ ...data, [name]: minus })) / (2 * eps);
    });
    // The loss is linear in each tensor, so central differences are exact up to f64 rounding.
    assertClose(grad, numeric, { atol: 1e-6, rtol: 1e-6 }, `d loss / d ${name}`);
  }
});

Deno.test(
  "conv2d GPU backward matches a directional derivative of the GPU forward",
  gpuTest,
  async () => {
    for (
      const c of [
        { x: [3, 5, 11, 10], k: 11, r: 3, stride: 2, padding: 1 },
        { x: [4, 16, 13, 13], k: 32, r: 4, stride: 2, padding: 0 },
      ] as Case[]
    ) {
      const data = randomData(c, 5);
      const b = await bind(c, "cpu");
      // loss = sum(y * r) with r = dy, so <grad, v> is d loss along v.
      const grads = await run(b, data);
      const rng = random(9);
      const eps = 1e-2;
      for (
        const [name, grad] of [["x", grads.dx], ["weight", grads.dw], ["bias", grads.db]] as const
      ) {
        const v = randomArray(rng, data[name].length);
        const lossAt = async (sign: number) => {
          const moved = data[name].map((value, i) => value + sign * eps * v[i]);
          const y = (await run(b, { ...data, [name]: moved })).y;
          return y.reduce((sum, value, i) => sum + value * data.dy[i], 0);
        };
        const numeric = ((await lossAt(1)) - (await lossAt(-1))) / (2 * eps);
        const analytic = grad.reduce((sum, g, i) => sum + g * v[i], 0);
        // Linear in each tensor, so the difference is exact but for f32 rounding of y
        // (relative 1e-6 of |y| summed over y.size terms), magnified by 1/(2 eps) = 50.
        const scale = Math.sqrt(grads.y.length) * 50 * 1e-5;
        assertClose([numeric], [analytic], { atol: scale, rtol: 1e-3 }, `${label(c)} d/d${name}`);
      }
    }
  },
);
