import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray as randomArrayLike, testRuntime } from "./util/gpu.ts";
import { kernel, op, readback, submit, tensor, uniform, upload } from "../lib/runtime.ts";
import { adaptiveAvgPool2d } from "../lib/layers/adaptive_avg_pool2d.ts";
import { layerHarness } from "./util/layer.ts";
import { adaptiveAvgPool2dBackward, adaptiveAvgPool2dForward } from "./reference/pool.ts";

type Shape4 = [number, number, number, number];

// randomArray's declared type (Float32Array<ArrayBufferLike>) is not accepted by upload().
const randomArray = (...args: Parameters<typeof randomArrayLike>) =>
  Float32Array.from(randomArrayLike(...args));
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

async function setup(shape: Shape4) {
  const h = await layerHarness(await testRuntime(), adaptiveAvgPool2d(), shape);
  return { ...h, dx: h.dx! };
}

Deno.test("adaptive_avg_pool2d reference backward matches central finite differences (f64)", () => {
  const rng = random(1);
  const shape: Shape4 = [2, 3, 3, 2];
  const x = Float64Array.from(randomArrayLike(rng, numel(shape)));
  const r = Float64Array.from(randomArrayLike(rng, 6));
  const eps = 1e-6;
  const fd = x.map((_, i) => {
    const at = (d: number) =>
      dot(adaptiveAvgPool2dForward(x.map((v, j) => j === i ? v + d : v), shape), r);
    return (at(eps) - at(-eps)) / (2 * eps);
  });
  // Linear: only rounding, ~1e-10.
  assertClose(adaptiveAvgPool2dBackward(r, shape), fd, { atol: 1e-8, rtol: 1e-8 }, "dx");
});

Deno.test(
  "adaptive_avg_pool2d matches the reference for odd planes and rows past one workgroup",
  gpuTest,
  async () => {
    const rng = random(2);
    // batch 1; odd plane of 25; 99 rows (> 64) with an even plane; plane 1; the seed's shape.
    for (const shape of [[1, 3, 5, 5], [33, 3, 4, 4], [3, 5, 1, 1], [32, 32, 5, 5]] as Shape4[]) {
      const h = await setup(shape);
      const x = randomArray(rng, numel(shape), -1, 3);
      const dy = randomArray(rng, shape[0] * shape[1], -1, 1);
      upload(h.rt, h.x, x);
      upload(h.rt, h.dy, dy);
      submit(h.rt, [...h.ops.train, ...h.ops.backward]);
      // Means of up to 25 f32 values below 3: a few ulp.
      const tol = { atol: 1e-6, rtol: 1e-6 };
      assertClose(
        await readback(h.rt, h.y),
        adaptiveAvgPool2dForward(x, shape),
        tol,
        `y [${shape}]`,
      );
      // One f32 division, which WGSL lets be off by 2.5 ulp (1 ulp = 1.2e-7 relative).
      const dxTol = { atol: 0, rtol: 3e-7 };
      assertClose(
        await readback(h.rt, h.dx),
        adaptiveAvgPool2dBackward(dy, shape),
        dxTol,
        `dx [${shape}]`,
      );
    }
  },
);

Deno.test("adaptive_avg_pool2d kernels index over a 2-D grid of workgroups", gpuTest, async () => {
  const rt = await testRuntime();
  const rng = random(3);
  const shape: Shape4 = [5, 60, 2, 3]; // 300 rows, 1800 values of dx
  const x = randomArray(rng, numel(shape)), dy = randomArray(rng, 300);
  const tx = tensor(rt, shape),
    ty = tensor(rt, [300]),
    tdy = tensor(rt, [300]),
    tdx = tensor(rt, shape);
  upload(rt, tx, x);
  upload(rt, tdy, dy);
  const constants = { WORKGROUP: 64, ELEMENTS: 4 };
  const u = uniform(rt, "pool", { rows: 300, plane: 6 });
  // 5 workgroups of rows as 2 x 3, 8 blocks of dx as 2 x 4, as grid() does past 65,535.
  submit(rt, [
    op(rt, await kernel(rt, "adaptive_avg_pool2d.wgsl", "forward", constants), [tx, ty, u], [2, 3]),
    op(rt, await kernel(rt, "adaptive_avg_pool2d.wgsl", "backward", constants), [tdy, tdx, u], [
      2,
      4,
    ]),
  ]);
  const tol = { atol: 1e-6, rtol: 1e-6 };
  assertClose(await readback(rt, ty), adaptiveAvgPool2dForward(x, shape), tol, "y");
  assertClose(await readback(rt, tdx), adaptiveAvgPool2dBackward(dy, shape), tol, "dx");
});

Deno.test(
  "adaptive_avg_pool2d GPU backward matches a directional derivative of the GPU forward",
  gpuTest,
  async () => {
    const rng = random(4);
    const shape: Shape4 = [32, 32, 5, 5];
    const n = numel(shape);
    const h = await setup(shape);
    const x = randomArray(rng, n), v = randomArray(rng, n), r = randomArray(rng, 32 * 32);
    const eps = 1e-2;
    const lossAt = async (t: number) => {
      upload(h.rt, h.x, x.map((w, i) => w + t * v[i]));
      submit(h.rt, h.ops.train);
      return dot(await readback(h.rt, h.y), r);
    };
    const fd = (await lossAt(eps) - await lossAt(-eps)) / (2 * eps);
    upload(h.rt, h.dy, r);
    submit(h.rt, h.ops.backward);
    const analytic = dot(await readback(h.rt, h.dx), v);
    // Linear: only the f32 rounding of the inputs and the means (~3e-8 each, 1024 of them)
    // divided by eps remains, ~1e-5 absolute; measured 7e-6.
    assertClose([fd], [analytic], { atol: 1e-4, rtol: 1e-5 }, "<dx, v>");
  },
);
