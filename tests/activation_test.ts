import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray as randomArrayLike, testRuntime } from "./util/gpu.ts";
import { kernel, op, readback, submit, tensor, uniform, upload } from "../lib/runtime.ts";
import { sigmoid, tanh } from "../lib/layers/activation.ts";
import type { Layer } from "../lib/layers/layer.ts";
import { layerHarness } from "./util/layer.ts";
import {
  sigmoidBackward,
  sigmoidForward,
  tanhBackward,
  tanhForward,
} from "./reference/activation.ts";

// randomArray's declared type (Float32Array<ArrayBufferLike>) is not accepted by upload().
const randomArray = (...args: Parameters<typeof randomArrayLike>) =>
  Float32Array.from(randomArrayLike(...args));
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

const functions = [
  { name: "tanh", layer: tanh, forward: tanhForward, backward: tanhBackward },
  { name: "sigmoid", layer: sigmoid, forward: sigmoidForward, backward: sigmoidBackward },
];

async function setup(layer: Layer, n: number) {
  const h = await layerHarness(await testRuntime(), layer, [n]);
  return { ...h, dx: h.dx! };
}

Deno.test("tanh and sigmoid reference backwards match central finite differences (f64)", () => {
  const rng = random(1);
  const x = Float64Array.from(randomArrayLike(rng, 50, -4, 4));
  const r = Float64Array.from(randomArrayLike(rng, 50));
  const eps = 1e-6;
  for (const f of functions) {
    const fd = x.map((_, i) => {
      const at = (d: number) => dot(f.forward(x.map((v, j) => j === i ? v + d : v)), r);
      return (at(eps) - at(-eps)) / (2 * eps);
    });
    // Smooth: the central difference errs by eps^2 f''' ~1e-12, plus rounding ~1e-10.
    assertClose(f.backward(f.forward(x), r), fd, { atol: 1e-8, rtol: 1e-8 }, `${f.name} dx`);
  }
});

Deno.test(
  "tanh and sigmoid match the reference, partial last block and extreme inputs included",
  gpuTest,
  async () => {
    const rng = random(2);
    // 1 value; one short of a workgroup's block of 256; several blocks with a partial last one.
    for (const n of [1, 255, 3 * 5 * 7 * 9]) {
      for (const f of functions) {
        const h = await setup(f.layer(), n);
        const x = randomArray(rng, n, -6, 6);
        // Where exp overflows or the result saturates: must stay finite and exact at the ends.
        [0, -0, 1e-7, -1e-7, 30, -30, 100, -100, 1e30, -1e30].forEach((v, i) =>
          i < n && (x[i] = v)
        );
        const dy = randomArray(rng, n, -1, 1);
        upload(h.rt, h.x, x);
        upload(h.rt, h.dy, dy);
        submit(h.rt, [...h.ops.train, ...h.ops.backward]);
        const y = await readback(h.rt, h.y);
        // exp is within a few ulp in f32 and the result lies in [-1, 1]: a few ulp of 1
        // absolute (tanh near 0 computes 1 - e with e ~ 1, so absolute, not relative).
        const tol = { atol: 5e-7, rtol: 1e-6 };
        assertClose(y, f.forward(x), tol, `${f.name} y [${n}]`);
        // dx from the f32 y: the backward formula on y is exact to ~2 ulp.
        assertClose(await readback(h.rt, h.dx), f.backward(y, dy), tol, `${f.name} dx [${n}]`);
      }
    }
  },
);

Deno.test("activation kernels index blocks over a 2-D grid of workgroups", gpuTest, async () => {
  const rt = await testRuntime();
  const rng = random(3);
  const n = 5 * 256 + 17;
  const x = randomArray(rng, n, -3, 3), dy = randomArray(rng, n);
  const [tx, ty, tdy, tdx] = ["x", "y", "dy", "dx"].map((label) => tensor(rt, [n], { label }));
  upload(rt, tx, x);
  upload(rt, tdy, dy);
  const constants = { WORKGROUP: 64, ELEMENTS: 4 };
  const u = uniform(rt, "activation", { count: n });
  for (const f of functions) {
    // 6 blocks laid out as 2 x 3 workgroups, as grid() does past 65,535.
    const k = (pass: string) => kernel(rt, "activation.wgsl", `${f.name}_${pass}`, constants);
    submit(rt, [
      op(rt, await k("forward"), [tx, ty, u], [2, 3]),
      op(rt, await k("backward"), [ty, tdy, tdx, u], [2, 3]),
    ]);
    const y = await readback(rt, ty);
    const tol = { atol: 5e-7, rtol: 1e-6 };
    assertClose(y, f.forward(x), tol, `${f.name} y`);
    assertClose(await readback(rt, tdx), f.backward(y, dy), tol, `${f.name} dx`);
  }
});

Deno.test(
  "tanh and sigmoid GPU backwards match a directional derivative of the GPU forward",
  gpuTest,
  async () => {
    const rng = random(4);
    const n = 32 * 6 * 28 * 28;
    for (const f of functions) {
      const h = await setup(f.layer(), n);
      const x = randomArray(rng, n, -3, 3), v = randomArray(rng, n), r = randomArray(rng, n);
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
      // Curvature: the central difference errs by eps^2/6 sum |f''' r v^3| ~ 2e-5 * sqrt(n)
      // ~ 8e-3 at most; f32 rounding of y (~1e-7 each, sqrt(n) of them) / eps adds ~2e-3;
      // <dx, v> is ~10-100. Measured 1.8e-3 (tanh) and 2.3e-4 (sigmoid).
      assertClose([fd], [analytic], { atol: 2e-2, rtol: 1e-4 }, `${f.name} <dx, v>`);
    }
  },
);
