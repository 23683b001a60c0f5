import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray as randomArrayLike, testRuntime } from "./util/gpu.ts";
import { kernel, op, readback, submit, tensor, uniform, upload } from "../lib/runtime.ts";
import { relu } from "../lib/layers/relu.ts";
import { layerHarness } from "./util/layer.ts";
import { reluBackward, reluForward } from "./reference/relu.ts";

// randomArray's declared type (Float32Array<ArrayBufferLike>) is not accepted by upload().
const randomArray = (...args: Parameters<typeof randomArrayLike>) =>
  Float32Array.from(randomArrayLike(...args));
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

async function setup(n: number) {
  const h = await layerHarness(await testRuntime(), relu(), [n]);
  return { ...h, dx: h.dx! };
}

Deno.test("relu reference backward matches central finite differences (f64)", () => {
  const rng = random(1);
  // Values at least 0.1 away from the kink, where the derivative is defined.
  const x = Float64Array.from(
    { length: 50 },
    () => (rng.uniform(0.1, 1)) * (rng.next() < 0.5 ? -1 : 1),
  );
  const r = Float64Array.from(randomArrayLike(rng, 50));
  const eps = 1e-6;
  const fd = x.map((_, i) => {
    const at = (d: number) => dot(reluForward(x.map((v, j) => j === i ? v + d : v)), r);
    return (at(eps) - at(-eps)) / (2 * eps);
  });
  // Piecewise linear away from the kink: only rounding, ~1e-10.
  assertClose(reluBackward(x, r), fd, { atol: 1e-8, rtol: 1e-8 }, "dx");
});

Deno.test(
  "relu forward and backward match the reference, partial last block included",
  gpuTest,
  async () => {
    const rng = random(2);
    // 1 value; one short of a workgroup's block of 256; several blocks with a partial last one.
    for (const n of [1, 255, 3 * 5 * 7 * 9]) {
      const h = await setup(n);
      const x = randomArray(rng, n, -1, 1);
      x[0] = 0; // the gradient at exactly 0 is 0
      const dy = randomArray(rng, n, -1, 1);
      upload(h.rt, h.x, x);
      upload(h.rt, h.dy, dy);
      submit(h.rt, [...h.ops.train, ...h.ops.backward]);
      // max and select are exact.
      const exact = { atol: 0, rtol: 0 };
      assertClose(await readback(h.rt, h.y), reluForward(x), exact, `y [${n}]`);
      assertClose(await readback(h.rt, h.dx), reluBackward(x, dy), exact, `dx [${n}]`);
    }
  },
);

Deno.test("relu kernels index blocks over a 2-D grid of workgroups", gpuTest, async () => {
  const rt = await testRuntime();
  const rng = random(3);
  const n = 5 * 256 + 17;
  const x = randomArray(rng, n), dy = randomArray(rng, n);
  const [tx, ty, tdy, tdx] = ["x", "y", "dy", "dx"].map((label) => tensor(rt, [n], { label }));
  upload(rt, tx, x);
  upload(rt, tdy, dy);
  const constants = { WORKGROUP: 64, ELEMENTS: 4 };
  const u = uniform(rt, "relu", { count: n });
  // 6 blocks laid out as 2 x 3 workgroups, as grid() does past 65,535.
  submit(rt, [
    op(rt, await kernel(rt, "relu.wgsl", "forward", constants), [tx, ty, u], [2, 3]),
    op(rt, await kernel(rt, "relu.wgsl", "backward", constants), [tx, tdy, tdx, u], [2, 3]),
  ]);
  assertClose(await readback(rt, ty), reluForward(x), { atol: 0, rtol: 0 }, "y");
  assertClose(await readback(rt, tdx), reluBackward(x, dy), { atol: 0, rtol: 0 }, "dx");
});

Deno.test(
  "relu GPU backward matches a directional derivative of the GPU forward",
  gpuTest,
  async () => {
    const rng = random(4);
    const n = 3 * 5 * 7 * 9;
    const h = await setup(n);
    const x = randomArray(rng, n, -1, 1), v = randomArray(rng, n, -1, 1);
    // r zeroed within 0.05 of the kink, so that no perturbation of size eps = 1e-2 straddles it.
    const r = randomArray(rng, n, -1, 1).map((w, i) => Math.abs(x[i]) < 0.05 ? 0 : w);
    const eps = 1e-2;
    const lossAt = async (t: number) => {
      upload(h.rt, h.x, x.map((w, i) => w + t * v[i]));
      submit(h.rt, h.ops.train);
      return dot(await readback(h.rt, h.y), r);
    };
    const fd = (await lossAt(eps) - await lossAt(-eps)) / (2 * eps);
    upload(h.rt, h.x, x);
    upload(h.rt, h.dy, r);
    submit(h.rt, h.ops.backward);
    const analytic = dot(await readback(h.rt, h.dx), v);
    // Piecewise linear: only the f32 rounding of x +- eps v (~3e-8 per value, sqrt(n) of them)
    // divided by eps remains, ~1e-5 absolute; measured 3e-6.
    assertClose([fd], [analytic], { atol: 1e-4, rtol: 1e-5 }, "<dx, v>");
  },
);
