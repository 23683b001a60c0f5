import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray as randomArrayLike, testRuntime } from "./util/gpu.ts";
import { kernel, op, readback, type Runtime, submit, uniform, upload } from "../lib/runtime.ts";
import type { Layer } from "../lib/layers/layer.ts";
import { type LayerHarness, layerHarness } from "./util/layer.ts";
import { linear } from "../lib/layers/linear.ts";
import { linearBackward, linearForward, type LinearShape } from "./reference/linear.ts";

// randomArray's declared type (Float32Array<ArrayBufferLike>) is not accepted by upload().
const randomArray = (...args: Parameters<typeof randomArrayLike>) =>
  Float32Array.from(randomArrayLike(...args));
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

type Harness = LayerHarness;

function setup(rt: Runtime, layer: Layer, shape: number[], withDx = true) {
  return layerHarness(rt, layer, shape, { dx: withDx });
}

// Batch 1 and 1x1; nothing a multiple of 4; the seed's 32 -> 10; LeNet-5's 120 -> 84 with every
// product over several workgroups; an eval-sized batch.
const SHAPES: LinearShape[] = [
  { batch: 1, inFeatures: 1, outFeatures: 1 },
  { batch: 3, inFeatures: 5, outFeatures: 7 },
  { batch: 33, inFeatures: 32, outFeatures: 10 },
  { batch: 70, inFeatures: 120, outFeatures: 84 },
  { batch: 1001, inFeatures: 84, outFeatures: 10 },
];

Deno.test("linear reference backward matches central finite differences (f64)", () => {
  const rng = random(1);
  const shape = { batch: 3, inFeatures: 4, outFeatures: 5 };
  const x = Float64Array.from(randomArrayLike(rng, 12));
  const weight = Float64Array.from(randomArrayLike(rng, 20));
  const bias = Float64Array.from(randomArrayLike(rng, 5));
  const r = Float64Array.from(randomArrayLike(rng, 15));
  const loss = (p: { x: Float64Array; weight: Float64Array; bias: Float64Array }) =>
    dot(linearForward(p, shape), r);
  const eps = 1e-6;
  const fd = (name: "x" | "weight" | "bias") => {
    const base = { x, weight, bias };
    return base[name].map((_, i) => {
      const at = (d: number) => {
        const moved = base[name].slice();
        moved[i] += d;
        return loss({ ...base, [name]: moved });
      };
      return (at(eps) - at(-eps)) / (2 * eps);
    });
  };
  const g = linearBackward({ x, weight, dy: r }, shape);
  // Bilinear: central differences are exact but for rounding, ~1e-10.
  const tol = { atol: 1e-8, rtol: 1e-8 };
  assertClose(g.dx, fd("x"), tol, "dx");
  assertClose(g.dweight, fd("weight"), tol, "dweight");
  assertClose(g.dbias, fd("bias"), tol, "dbias");
});

Deno.test(
  "linear forward and backward match the reference across edge tiles and workgroups",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(2);
    for (const shape of SHAPES) {
      const { batch, inFeatures: ins, outFeatures: outs } = shape;
      const h = await setup(rt, linear(ins, outs), [batch, ins]);
      const x = randomArray(rng, batch * ins), dy = randomArray(rng, batch * outs);
      const weight = randomArray(rng, outs * ins), bias = randomArray(rng, outs);
      upload(rt, h.x, x);
      upload(rt, h.dy, dy);
      upload(rt, h.params.weight, weight);
      upload(rt, h.params.bias, bias);
      submit(rt, [...h.ops.train, ...h.ops.backward]);
      const label = `[${batch}, ${ins} -> ${outs}]`;
      const y = linearForward({ x, weight, bias }, shape);
      const g = linearBackward({ x, weight, dy }, shape);
      // f32 sums of K products of values in [-1, 1]: error ~ K * 6e-8 at worst; atol per K.
      const tol = (k: number) => ({ atol: 1e-7 * k, rtol: 1e-6 });
      assertClose(await readback(rt, h.y), y, tol(ins), `y ${label}`);
      assertClose(await readback(rt, h.dx!), g.dx, tol(outs), `dx ${label}`);
      assertClose(await readback(rt, h.grads.weight), g.dweight, tol(batch), `dweight ${label}`);
      assertClose(await readback(rt, h.grads.bias), g.dbias, tol(batch), `dbias ${label}`);
    }
  },
);

Deno.test(
  "linear backward without dx (a first layer) still writes dweight and dbias",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(3);
    const shape = { batch: 70, inFeatures: 120, outFeatures: 84 };
    const h = await setup(rt, linear(120, 84), [70, 120], false);
    const x = randomArray(rng, 70 * 120), dy = randomArray(rng, 70 * 84);
    const weight = randomArray(rng, 84 * 120);
    upload(rt, h.x, x);
    upload(rt, h.dy, dy);
    upload(rt, h.params.weight, weight);
    // A forward first, as every backward needs (the wing's reads x's mirror that it fills).
    submit(rt, [...h.ops.train, ...h.ops.backward]);
    const g = linearBackward({ x, weight, dy }, shape);
    const tol = { atol: 1e-7 * 70, rtol: 1e-6 };
    assertClose(await readback(rt, h.grads.weight), g.dweight, tol, "dweight");
    assertClose(await readback(rt, h.grads.bias), g.dbias, tol, "dbias");
  },
);

Deno.test("linear kernels index tiles over a 2-D grid of workgroups", gpuTest, async () => {
  const rt = await testRuntime();
  const rng = random(4);
  const shape = { batch: 70, inFeatures: 120, outFeatures: 84 };
  const h = await setup(rt, linear(120, 84), [70, 120]);
  const x = randomArray(rng, 70 * 120), dy = randomArray(rng, 70 * 84);
  const weight = randomArray(rng, 84 * 120), bias = randomArray(rng, 84);
  upload(rt, h.x, x);
  upload(rt, h.dy, dy);
  upload(rt, h.params.weight, weight);
  upload(rt, h.params.bias, bias);
  // forward: 378 tiles = 6 workgroups; backward: dx 9, dweight 10, dbias 1 workgroups.
  const u = uniform(rt, "linear", {
    batch: 70,
    in_features: 120,
    out_features: 84,
    dx_groups: 9,
    dweight_groups: 10,
    dbias_groups: 1,
  });
  const forward = await kernel(rt, "linear.wgsl", "forward", { WORKGROUP: 64 });
  const backward = await kernel(rt, "linear.wgsl", "backward", { WORKGROUP: 64 });
  const { params, grads } = h;
  // As grid() lays them out past 65,535: 2 x 3 and 7 x 3 (one spare workgroup) .
  submit(rt, [
    op(rt, forward, [h.x, params.weight, params.bias, h.y, u], [2, 3]),
    op(rt, backward, [h.x, params.weight, h.dy, grads.weight, grads.bias, u, h.dx!, h.y], [
      7,
      3,
    ]),
  ]);
  const y = linearForward({ x, weight, bias }, shape);
  const g = linearBackward({ x, weight, dy }, shape);
  const tol = (k: number) => ({ atol: 1e-7 * k, rtol: 1e-6 });
  assertClose(await readback(rt, h.y), y, tol(120), "y");
  assertClose(await readback(rt, h.dx!), g.dx, tol(84), "dx");
  assertClose(await readback(rt, grads.weight), g.dweight, tol(70), "dweight");
  assertClose(await readback(rt, grads.bias), g.dbias, tol(70), "dbias");
});

Deno.test(
  "linear GPU backward matches a directional derivative of the GPU forward",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(5);
    const [batch, ins, outs] = [33, 32, 10];
    const h = await setup(rt, linear(ins, outs), [batch, ins]);
    const x = randomArray(rng, batch * ins), vx = randomArray(rng, batch * ins);
    const weight = randomArray(rng, outs * ins), vw = randomArray(rng, outs * ins);
    const bias = randomArray(rng, outs), vb = randomArray(rng, outs);
    const r = randomArray(rng, batch * outs);
    const eps = 1e-2;
    const lossAt = async (t: number) => {
      upload(rt, h.x, x.map((v, i) => v + t * vx[i]));
      upload(rt, h.params.weight, weight.map((v, i) => v + t * vw[i]));
      upload(rt, h.params.bias, bias.map((v, i) => v + t * vb[i]));
      submit(rt, h.ops.train);
      return dot(await readback(rt, h.y), r);
    };
    const fd = (await lossAt(eps) - await lossAt(-eps)) / (2 * eps);
    await lossAt(0);
    upload(rt, h.dy, r);
    submit(rt, h.ops.backward);
    const analytic = dot(await readback(rt, h.dx!), vx) +
      dot(await readback(rt, h.grads.weight), vw) + dot(await readback(rt, h.grads.bias), vb);
    // Bilinear, so central differences have no truncation error; what remains is the f32
    // rounding of 330 outputs (sums of 32 products, ~1e-6 each) divided by eps: ~1e-3 at worst.
    assertClose([fd], [analytic], { atol: 2e-3, rtol: 1e-5 }, "<grad, v>");
  },
);
