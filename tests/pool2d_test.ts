import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray as randomArrayLike, testRuntime } from "./util/gpu.ts";
import type { Random } from "../lib/random.ts";
import {
  kernel,
  numel,
  op,
  readback,
  readbackU32,
  submit,
  tensor,
  uniform,
  upload,
} from "../lib/runtime.ts";
import { avgPool2d, maxPool2d } from "../lib/layers/pool2d.ts";
import type { Layer } from "../lib/layers/layer.ts";
import { layerHarness } from "./util/layer.ts";
import {
  avgPool2dBackward,
  avgPool2dForward,
  maxPool2dBackward,
  maxPool2dForward,
  pool2dOutputShape,
  type Pool2dShape,
} from "./reference/pool2d.ts";

type Shape4 = [number, number, number, number];

/** randomArray, typed for upload() (randomArray's declared type allows a shared buffer). */
function floats(rng: Random, n: number, low = -1, high = 1): Float32Array<ArrayBuffer> {
  return Float32Array.from(randomArrayLike(rng, n, low, high));
}
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** Distinct values, each at least 0.5 / n from the others: no max changes under a small step. */
function distinct(rng: Random, n: number): Float32Array<ArrayBuffer> {
  const values = Float32Array.from({ length: n }, (_, i) => (i + 0.5) / n - 0.5);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [values[i], values[j]] = [values[j], values[i]];
  }
  return values;
}

async function setup(layer: Layer, shape: Shape4) {
  const h = await layerHarness(await testRuntime(), layer, shape);
  return { ...h, dx: h.dx! };
}

Deno.test("pool2d reference backward matches central finite differences (f64)", () => {
  const rng = random(1);
  // Overlapping windows (stride 2 < window 3) and a last row no window reaches.
  const shape: Pool2dShape = { x: [2, 2, 6, 5], kernelSize: 3, stride: 2 };
  const n = numel(shape.x);
  const x = Float64Array.from(distinct(rng, n));
  const r = Float64Array.from(randomArrayLike(rng, numel(pool2dOutputShape(shape))));
  const eps = 1e-6;
  const fd = (forward: (x: Float64Array) => Float64Array) =>
    x.map((_, i) => {
      const at = (d: number) => dot(forward(x.map((v, j) => j === i ? v + d : v)), r);
      return (at(eps) - at(-eps)) / (2 * eps);
    });
  // Linear (avg), and piecewise linear with no max within eps of another (max): only rounding.
  const tol = { atol: 1e-8, rtol: 1e-8 };
  assertClose(avgPool2dBackward(r, shape), fd((v) => avgPool2dForward(v, shape)), tol, "avg dx");
  const { indices } = maxPool2dForward(x, shape);
  assertClose(
    maxPool2dBackward(r, indices, shape),
    fd((v) => maxPool2dForward(v, shape).y),
    tol,
    "max dx",
  );
});

/** Window, stride and input shapes chosen to break the index arithmetic. */
const cases: { x: Shape4; kernelSize: number; stride?: number; why: string }[] = [
  {
    x: [1, 3, 5, 5],
    kernelSize: 2,
    why: "batch 1, odd sides: the last row and column are dropped",
  },
  { x: [3, 5, 7, 9], kernelSize: 3, stride: 2, why: "overlapping windows" },
  { x: [2, 3, 8, 7], kernelSize: 2, stride: 3, why: "gaps: pixels no window reaches" },
  { x: [33, 6, 10, 10], kernelSize: 2, why: "batch 33, several workgroups" },
  { x: [32, 6, 28, 28], kernelSize: 2, why: "LeNet-5's S2" },
  {
    x: [2, 3, 11, 13],
    kernelSize: 2,
    stride: 4,
    why: "gaps, last tiles of 3 rows and 5 columns (shorter and longer than the stride)",
  },
  { x: [3, 2, 7, 6], kernelSize: 1, stride: 2, why: "1x1 windows with gaps" },
  { x: [2, 2, 9, 9], kernelSize: 4, stride: 1, why: "windows overlapping by 3" },
  { x: [4, 3, 9, 9], kernelSize: 3, why: "3x3 tiles, no remainder" },
];

Deno.test(
  "avg_pool2d forward and backward match the reference for odd sizes, overlaps and gaps",
  gpuTest,
  async () => {
    const rng = random(2);
    for (const c of cases) {
      const shape = { x: c.x, kernelSize: c.kernelSize, stride: c.stride ?? c.kernelSize };
      const h = await setup(avgPool2d(c), c.x);
      const x = floats(rng, h.x.size), dy = floats(rng, h.y.size);
      upload(h.rt, h.x, x);
      upload(h.rt, h.dy, dy);
      upload(h.rt, h.dx, new Float32Array(h.dx.size).fill(NaN));
      submit(h.rt, [...h.ops.train, ...h.ops.backward]);
      // Sums of at most 9 f32 values in [-1, 1] then a division: a few ulp of 1.
      const tol = { atol: 1e-6, rtol: 1e-6 };
      assertClose(await readback(h.rt, h.y), avgPool2dForward(x, shape), tol, `y (${c.why})`);
      assertClose(await readback(h.rt, h.dx), avgPool2dBackward(dy, shape), tol, `dx (${c.why})`);
    }
  },
);

Deno.test(
  "max_pool2d matches the reference and routes the gradient to the first max on ties",
  gpuTest,
  async () => {
    const rng = random(3);
    for (const c of cases) {
      const shape = { x: c.x, kernelSize: c.kernelSize, stride: c.stride ?? c.kernelSize };
      const h = await setup(maxPool2d(c), c.x);
      // Values from {-1, 0, 1}: most windows hold ties; PyTorch keeps the first max.
      const x = Float32Array.from({ length: h.x.size }, () => rng.int(3) - 1);
      const dy = floats(rng, h.y.size);
      upload(h.rt, h.x, x);
      upload(h.rt, h.dy, dy);
      upload(h.rt, h.dx, new Float32Array(h.dx.size).fill(NaN));
      submit(h.rt, [...h.ops.train, ...h.ops.backward]);
      const want = maxPool2dForward(x, shape);
      // The max is a copy and dx a sum of at most 4 dy values: exact up to summation order.
      assertClose(await readback(h.rt, h.y), want.y, { atol: 0, rtol: 0 }, `y (${c.why})`);
      assertClose(
        await readback(h.rt, h.dx),
        maxPool2dBackward(dy, want.indices, shape),
        { atol: 1e-6, rtol: 0 },
        `dx (${c.why})`,
      );
    }
  },
);

Deno.test("pool2d kernels index blocks over a 2-D grid of workgroups", gpuTest, async () => {
  const rt = await testRuntime();
  const rng = random(4);
  const shape: Shape4 = [5, 7, 12, 10]; // 1,050 windows, 4,200 inputs
  const ref = { x: shape, kernelSize: 2, stride: 2 };
  const out = pool2dOutputShape(ref);
  const x = floats(rng, numel(shape)), dy = floats(rng, numel(out));
  const [tx, tdx] = [tensor(rt, shape), tensor(rt, shape)];
  const [ty, tdy] = [tensor(rt, out), tensor(rt, out)];
  const indices = tensor(rt, out, { dtype: "u32" });
  upload(rt, tx, x);
  upload(rt, tdy, dy);
  const u = uniform(rt, "pool", { planes: 35 });
  const shapes = { HEIGHT: 12, WIDTH: 10, OUT_HEIGHT: 6, OUT_WIDTH: 5, KERNEL_SIZE: 2 };
  const k = (entry: string, stride = 2) =>
    kernel(rt, "pool2d.wgsl", entry, { WORKGROUP: 64, ELEMENTS: 4, ...shapes, STRIDE: stride });
  // 5 blocks of y as 2 x 3 workgroups, as grid() does past 65,535 (and the backward, one
  // invocation a window); 17 blocks of dx as 3 x 6 for the backward over pixels.
  submit(rt, [op(rt, await k("max_forward"), [tx, ty, u, indices], [2, 3])]);
  const want = maxPool2dForward(x, ref);
  assertClose(await readback(rt, ty), want.y, { atol: 0, rtol: 0 }, "max y");
  const gotIndices = await readbackU32(rt, indices);
  assertClose(gotIndices, want.indices, { atol: 0, rtol: 0 }, "max indices");
  const dxTol = { atol: 1e-6, rtol: 0 };
  const wantDx = maxPool2dBackward(dy, want.indices, ref);
  submit(rt, [op(rt, await k("max_backward"), [tdy, tdx, u, tx, indices], [2, 3])]);
  assertClose(await readback(rt, tdx), wantDx, dxTol, "max dx");
  // The gather over pixels, run here on windows that do not overlap: the same dx.
  upload(rt, tdx, new Float32Array(tdx.size).fill(NaN));
  submit(rt, [op(rt, await k("max_backward_overlapping"), [tdy, tdx, u, tx, indices], [3, 6])]);
  assertClose(await readback(rt, tdx), wantDx, dxTol, "max dx (overlapping)");
  submit(rt, [
    op(rt, await k("avg_forward"), [tx, ty, u], [2, 3]),
    op(rt, await k("avg_backward"), [tdy, tdx, u, tx], [2, 3]),
  ]);
  const tol = { atol: 1e-6, rtol: 1e-6 };
  assertClose(await readback(rt, ty), avgPool2dForward(x, ref), tol, "avg y");
  assertClose(await readback(rt, tdx), avgPool2dBackward(dy, ref), tol, "avg dx");
  upload(rt, tdx, new Float32Array(tdx.size).fill(NaN));
  submit(rt, [op(rt, await k("avg_backward_overlapping"), [tdy, tdx, u, tx], [3, 6])]);
  assertClose(await readback(rt, tdx), avgPool2dBackward(dy, ref), tol, "avg dx (overlapping)");
});

/**
 * x [N,C,H,W] for 2x2 windows with stride 2 (H, W even) whose 4 values are a base plus 0, 0.1,
 * 0.2 and 0.3 in a random order: the max of a window leads the runner-up by 0.1.
 */
function separatedWindows(rng: Random, shape: Shape4): Float32Array<ArrayBuffer> {
  const [n, c, h, w] = shape;
  const x = new Float32Array(n * c * h * w);
  for (let plane = 0; plane < n * c; plane++) {
    for (let p = 0; p < h; p += 2) {
      for (let q = 0; q < w; q += 2) {
        const base = rng.uniform(-1, 0.7);
        const steps = [0, 0.1, 0.2, 0.3];
        for (let i = 3; i > 0; i--) {
          const j = rng.int(i + 1);
          [steps[i], steps[j]] = [steps[j], steps[i]];
        }
        steps.forEach((d, t) => x[(plane * h + p + (t >> 1)) * w + q + (t & 1)] = base + d);
      }
    }
  }
  return x;
}

Deno.test(
  "pool2d GPU backward matches a directional derivative of the GPU forward",
  gpuTest,
  async () => {
    const rng = random(5);
    const shape: Shape4 = [32, 6, 28, 28];
    for (const layer of [avgPool2d({ kernelSize: 2 }), maxPool2d({ kernelSize: 2 })]) {
      const h = await setup(layer, shape);
      const n = h.x.size;
      // A step of eps * |v| <= 1e-2 moves no window's max past its runner-up (0.1 behind).
      const x = separatedWindows(rng, shape);
      const v = floats(rng, n), r = floats(rng, h.y.size);
      const eps = 1e-2;
      const lossAt = async (t: number) => {
        upload(h.rt, h.x, x.map((w, i) => w + t * v[i]));
        submit(h.rt, h.ops.train);
        return dot(await readback(h.rt, h.y), r);
      };
      const fd = (await lossAt(eps) - await lossAt(-eps)) / (2 * eps);
      upload(h.rt, h.x, x);
      submit(h.rt, h.ops.train);
      upload(h.rt, h.dy, r);
      submit(h.rt, h.ops.backward);
      const analytic = dot(await readback(h.rt, h.dx), v);
      // Linear in x (avg), or linear with the same max (max): only the f32 rounding of
      // x + t v and of y (~6e-8 each) over 37,632 outputs remains, ~1e-5 in the loss and
      // ~5e-4 once divided by 2 eps, against <dx, v> of ~10-60. Measured 5e-5 (avg), 1.3e-4 (max).
      assertClose([fd], [analytic], { atol: 2e-3, rtol: 1e-5 }, `${layer.type} <dx, v>`);
    }
  },
);

Deno.test(
  "pool2d backward turns a -0 in dy into +0 in dx, as PyTorch's sum into a zeroed gradient",
  gpuTest,
  async () => {
    const rng = random(6);
    // Tiles (the window's dy written to its taps) and the gather over overlapping windows.
    for (const options of [{ kernelSize: 2 }, { kernelSize: 3, stride: 2 }]) {
      for (const layer of [avgPool2d(options), maxPool2d(options)]) {
        const h = await setup(layer, [2, 3, 8, 8]);
        upload(h.rt, h.x, floats(rng, h.x.size));
        upload(h.rt, h.dy, new Float32Array(h.dy.size).fill(-0));
        submit(h.rt, [...h.ops.train, ...h.ops.backward]);
        const dx = await readback(h.rt, h.dx);
        const bad = dx.findIndex((v) => v !== 0 || Object.is(v, -0));
        if (bad >= 0) {
          throw new Error(
            `${layer.type} ${JSON.stringify(options)}: dx[${bad}] = ${
              Object.is(dx[bad], -0) ? "-0" : dx[bad]
            }, not +0`,
          );
        }
      }
    }
  },
);
