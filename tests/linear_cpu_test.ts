import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray as randomArrayLike, testRuntime } from "./util/gpu.ts";
import {
  numel,
  type Op,
  opName,
  readback,
  type Runtime,
  submit,
  type Tensor,
  tensor,
  upload,
  view,
} from "../lib/runtime.ts";
import type { Layer } from "../lib/layers/layer.ts";
import { buildLayer, PLAIN_TIER, type Tier } from "../lib/tier.ts";
import { CPU_TIER } from "../lib/cpu/tier.ts";
import { buildLinear, LINEAR_WING_MIN_MACS } from "../lib/cpu/linear.ts";
import { linear } from "../lib/layers/linear.ts";
import { conv2dAsLinear } from "../lib/layers/conv2d_as_linear.ts";
import { linearBackward, linearForward, type LinearShape } from "./reference/linear.ts";

/**
 * The wing's Linear for every size: the CPU tier builds it only where it pays
 * (LINEAR_WING_MIN_MACS), and these tests check it on small shapes too.
 */
const WING: Tier = { name: "cpu", build: buildLinear };
const TIERS = [PLAIN_TIER, WING];

// randomArray's declared type (Float32Array<ArrayBufferLike>) is not accepted by upload().
const randomArray = (...args: Parameters<typeof randomArrayLike>) =>
  Float32Array.from(randomArrayLike(...args));

/** Floats around every view: a kernel that reads or writes past its view meets them. */
const MARGIN = 64;
/** What surrounds an output: a write past its view changes it. */
const OUTSIDE = -7;

/** A view of `shape` at element MARGIN of a buffer of its own with MARGIN floats after it. */
interface Framed {
  t: Tensor;
  /** The whole buffer, view included. */
  all: Tensor;
}

function framed(rt: Runtime, shape: number[], label: string): Framed {
  const size = numel(shape);
  const all = tensor(rt, [MARGIN + Math.ceil(size / MARGIN) * MARGIN + MARGIN], { label });
  return { t: view(all, MARGIN, shape, label), all };
}

/** Fills `f`: `inside` in its view, `around` everywhere else. */
function fill(rt: Runtime, f: Framed, inside: Float32Array, around: number) {
  const data = new Float32Array(f.all.size).fill(around);
  data.set(inside, MARGIN);
  upload(rt, f.all, data);
}

/** Checks that the floats around `f`'s view still hold OUTSIDE. */
async function assertFrameKept(rt: Runtime, f: Framed, label: string) {
  const all = await readback(rt, f.all);
  const around = [...all.subarray(0, MARGIN), ...all.subarray(MARGIN + f.t.size)];
  assertClose(around, around.map(() => OUTSIDE), { atol: 0, rtol: 0 }, `${label}: around`);
}

interface Case {
  x: Float32Array<ArrayBuffer>;
  weight: Float32Array<ArrayBuffer>;
  bias: Float32Array<ArrayBuffer>;
  dy: Float32Array<ArrayBuffer>;
}

/**
 * Builds `layer` with `tier` over framed views (as a model passes views, with NaN around the
 * inputs and OUTSIDE around the outputs), runs a training forward and the backward on `data`
 * with every output NaN-filled first (so that a float left unwritten fails), checks the
 * frames and returns the outputs.
 */
async function run(
  rt: Runtime,
  layer: Layer,
  tier: Tier,
  shapes: { x: number[]; withDx: boolean },
  data: Case,
) {
  const y = layer.outputShape(shapes.x);
  const [weightSpec, biasSpec] = layer.params;
  const t = {
    x: framed(rt, shapes.x, "x"),
    y: framed(rt, y, "y"),
    dy: framed(rt, y, "dy"),
    dx: shapes.withDx ? framed(rt, shapes.x, "dx") : null,
    weight: framed(rt, weightSpec.shape, "weight"),
    bias: framed(rt, biasSpec.shape, "bias"),
    dweight: framed(rt, weightSpec.shape, "dweight"),
    dbias: framed(rt, biasSpec.shape, "dbias"),
  };
  const ops = await buildLayer(tier, layer, {
    rt,
    x: t.x.t,
    y: t.y.t,
    dy: t.dy.t,
    dx: t.dx?.t ?? null,
    params: { weight: t.weight.t, bias: t.bias.t },
    grads: { weight: t.dweight.t, bias: t.dbias.t },
  });
  fill(rt, t.x, data.x, NaN);
  fill(rt, t.dy, data.dy, NaN);
  fill(rt, t.weight, data.weight, NaN);
  fill(rt, t.bias, data.bias, NaN);
  const outputs = [t.y, t.dx, t.dweight, t.dbias].filter((f) => f !== null);
  for (const f of outputs) fill(rt, f, new Float32Array(f.t.size).fill(NaN), OUTSIDE);
  submit(rt, [...ops.train, ...ops.backward]);
  for (const f of outputs) await assertFrameKept(rt, f, `${tier.name} ${f.t.label}`);
  return {
    ops,
    t,
    y: await readback(rt, t.y.t),
    dx: t.dx && await readback(rt, t.dx.t),
    dweight: await readback(rt, t.dweight.t),
    dbias: await readback(rt, t.dbias.t),
  };
}

function randomCase(seed: number, s: LinearShape): Case {
  const rng = random(seed);
  return {
    x: randomArray(rng, s.batch * s.inFeatures),
    weight: randomArray(rng, s.outFeatures * s.inFeatures),
    bias: randomArray(rng, s.outFeatures),
    dy: randomArray(rng, s.batch * s.outFeatures),
  };
}

/** Dispatches (not copies) in a list of ops. */
const dispatches = (ops: Op[]) => ops.filter((o) => "kernel" in o);

// Batch 1 and 1x1; features that are not multiples of 4 (rows that straddle texels, and
// blocks past the edge); LeNet-5's three shapes (C5 as a Linear, F6, the output) and the
// seed's 32 -> 10 at batch 32; batch 1 through C5; a large batch (an eval batch of 1024 and
// a partial last batch of 37).
const SHAPES: LinearShape[] = [
  { batch: 1, inFeatures: 1, outFeatures: 1 },
  { batch: 3, inFeatures: 7, outFeatures: 5 },
  { batch: 5, inFeatures: 9, outFeatures: 13 },
  { batch: 6, inFeatures: 4, outFeatures: 3 },
  { batch: 2, inFeatures: 3, outFeatures: 8 },
  { batch: 32, inFeatures: 400, outFeatures: 120 },
  { batch: 32, inFeatures: 120, outFeatures: 84 },
  { batch: 32, inFeatures: 84, outFeatures: 10 },
  { batch: 32, inFeatures: 32, outFeatures: 10 },
  { batch: 1, inFeatures: 400, outFeatures: 120 },
  { batch: 37, inFeatures: 84, outFeatures: 10 },
  { batch: 1024, inFeatures: 84, outFeatures: 10 },
];

/** f32 sums of K products of values in [-1, 1]: error ~ K * 6e-8 at worst; atol per K. */
const tol = (k: number) => ({ atol: 1e-7 * k, rtol: 1e-6 });

Deno.test(
  "linear (CPU wing) matches the plain tier and the f64 reference on odd shapes, batch 1 and 1024",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    for (const [i, shape] of SHAPES.entries()) {
      const { batch, inFeatures: ins, outFeatures: outs } = shape;
      const data = randomCase(100 + i, shape);
      const want = { y: linearForward(data, shape), ...linearBackward(data, shape) };
      const label = `[${batch}, ${ins}] -> ${outs}`;
      const got = [];
      for (const tier of TIERS) {
        const out = await run(rt, linear(ins, outs), tier, { x: [batch, ins], withDx: true }, data);
        const what = `${tier.name} ${label}`;
        assertClose(out.y, want.y, tol(ins), `y ${what}`);
        assertClose(out.dx!, want.dx, tol(outs), `dx ${what}`);
        assertClose(out.dweight, want.dweight, tol(batch), `dweight ${what}`);
        assertClose(out.dbias, want.dbias, tol(batch), `dbias ${what}`);
        got.push(out);
      }
      // The wing against the plain tier: both within tol of the reference, so within twice it
      // of each other (they sum in different orders, so not bit for bit).
      const [plain, wing] = got;
      const twice = (k: number) => ({ atol: 2e-7 * k, rtol: 2e-6 });
      assertClose(wing.y, plain.y, twice(ins), `y wing vs plain ${label}`);
      assertClose(wing.dx!, plain.dx!, twice(outs), `dx wing vs plain ${label}`);
      assertClose(wing.dweight, plain.dweight, twice(batch), `dweight wing vs plain ${label}`);
      assertClose(wing.dbias, plain.dbias, twice(batch), `dbias wing vs plain ${label}`);
    }
  },
);

Deno.test(
  "linear (CPU wing) without dx (a first layer) writes dweight and dbias, one dispatch a pass",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    for (const [i, shape] of [SHAPES[1], SHAPES[6]].entries()) {
      const { batch, inFeatures: ins, outFeatures: outs } = shape;
      const data = randomCase(200 + i, shape);
      const want = linearBackward(data, shape);
      const layer = linear(ins, outs);
      const out = await run(rt, layer, WING, { x: [batch, ins], withDx: false }, data);
      const label = `[${batch}, ${ins}] -> ${outs}`;
      assertClose(out.dweight, want.dweight, tol(batch), `dweight ${label}`);
      assertClose(out.dbias, want.dbias, tol(batch), `dbias ${label}`);
      // As the plain tier: one dispatch forward, one backward (besides the mirrors' copies).
      for (const pass of ["train", "eval", "backward"] as const) {
        const names = dispatches(out.ops[pass]).map(opName);
        const expected = [`cpu/linear.wgsl:${pass === "backward" ? "backward" : "forward"}`];
        if (names.join() !== expected.join()) throw new Error(`${pass}: ${names.join(", ")}`);
      }
    }
  },
);

Deno.test(
  "linear (CPU wing) forward and backward are bit-identical run to run",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const shape = { batch: 32, inFeatures: 400, outFeatures: 120 };
    const data = randomCase(300, shape);
    const runs = [];
    for (let i = 0; i < 2; i++) {
      runs.push(await run(rt, linear(400, 120), WING, { x: [32, 400], withDx: true }, data));
    }
    for (const name of ["y", "dx", "dweight", "dbias"] as const) {
      assertClose(runs[1][name]!, runs[0][name]!, { atol: 0, rtol: 0 }, name);
    }
  },
);

Deno.test(
  "conv2dAsLinear in the CPU wing is built as a Linear (not a Conv2d) and matches the reference",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    // LeNet-5's C5 at batch 32 and 1; channels and outputs that are not multiples of 4.
    for (const [n, c, k, r] of [[32, 16, 120, 5], [1, 16, 120, 5], [3, 5, 7, 3]]) {
      const shape = { batch: n, inFeatures: c * r * r, outFeatures: k };
      const data = randomCase(400 + n + c, shape);
      const want = { y: linearForward(data, shape), ...linearBackward(data, shape) };
      const layer = conv2dAsLinear({ inChannels: c, outChannels: k, kernelSize: r });
      // The CPU tier builds C5 in the wing; the small one is built with the wing directly.
      const tier = n * c * r * r * k >= LINEAR_WING_MIN_MACS ? CPU_TIER : WING;
      const out = await run(rt, layer, tier, { x: [n, c, r, r], withDx: true }, data);
      const names = [...out.ops.train, ...out.ops.backward].filter((o) => "kernel" in o)
        .map(opName);
      const expected = ["cpu/linear.wgsl:forward", "cpu/linear.wgsl:backward"];
      if (names.join() !== expected.join()) throw new Error(`built as ${names.join(", ")}`);
      const label = `[${n},${c},${r},${r}] -> ${k}`;
      assertClose(out.y, want.y, tol(c * r * r), `y ${label}`);
      assertClose(out.dx!, want.dx, tol(k), `dx ${label}`);
      assertClose(out.dweight, want.dweight, tol(n), `dweight ${label}`);
      assertClose(out.dbias, want.dbias, tol(n), `dbias ${label}`);
    }
  },
);

Deno.test("linear (CPU wing) refuses tensors of the wrong size, naming them", gpuTest, async () => {
  const rt = await testRuntime();
  const layer = linear(7, 5);
  const t = (shape: number[]) => tensor(rt, shape);
  const ctx = {
    rt,
    x: t([3, 7]),
    y: t([3, 5]),
    dy: t([3, 6]),
    dx: t([3, 7]),
    params: { weight: t([5, 7]), bias: t([5]) },
    grads: { weight: t([5, 7]), bias: t([5]) },
  };
  let message = "";
  try {
    await buildLayer(WING, layer, ctx);
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes("dy [3,6] is not [3, 5]")) throw new Error(`"${message}"`);
});

Deno.test(
  "the CPU tier builds the wing's Linear where the product pays, the plain one below",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    // 84 -> 10: 26,880 multiply-adds at batch 32 (plain), 430,080 at batch 512 (wing); C5
    // as a Linear even at batch 1 (48,000).
    const cases: [Layer, number[], string][] = [
      [linear(84, 10), [32, 84], "linear.wgsl:forward"],
      [linear(84, 10), [512, 84], "cpu/linear.wgsl:forward"],
      [linear(32, 10), [32, 32], "linear.wgsl:forward"],
      [
        conv2dAsLinear({ inChannels: 16, outChannels: 120, kernelSize: 5 }),
        [1, 16, 5, 5],
        "cpu/linear.wgsl:forward",
      ],
    ];
    for (const [layer, x, expected] of cases) {
      const y = layer.outputShape(x);
      const ops = await buildLayer(CPU_TIER, layer, {
        rt,
        x: tensor(rt, x),
        y: tensor(rt, y),
        dy: tensor(rt, y),
        dx: tensor(rt, x),
        params: Object.fromEntries(layer.params.map((p) => [p.name, tensor(rt, p.shape)])),
        grads: Object.fromEntries(layer.params.map((p) => [p.name, tensor(rt, p.shape)])),
      });
      const names = dispatches(ops.train).map(opName);
      if (names.join() !== expected) throw new Error(`[${x}]: ${names.join()}, not ${expected}`);
    }
  },
);

Deno.test(
  "linear (CPU wing) kernels index their blocks over a 2-D grid of workgroups",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const shape = { batch: 70, inFeatures: 120, outFeatures: 84 };
    const data = randomCase(500, shape);
    const want = { y: linearForward(data, shape), ...linearBackward(data, shape) };
    const h = await run(rt, linear(120, 84), WING, { x: [70, 120], withDx: true }, data);
    // The same dispatches again, their workgroups laid out as grid() lays them out past
    // 65,535: x wide and as many rows as cover them (the spare ones return at once).
    const regrid = (ops: Op[]) =>
      ops.map((o) => {
        if (!("kernel" in o)) return o;
        const count = o.workgroups[0];
        const x = Math.ceil(count / 3);
        return { ...o, workgroups: [x, 3, 1] as [number, number, number] };
      });
    const outputs = [h.t.y, h.t.dx!, h.t.dweight, h.t.dbias];
    for (const f of outputs) fill(rt, f, new Float32Array(f.t.size).fill(NaN), OUTSIDE);
    submit(rt, [...regrid(h.ops.train), ...regrid(h.ops.backward)]);
    assertClose(await readback(rt, h.t.y.t), want.y, tol(120), "y");
    assertClose(await readback(rt, h.t.dx!.t), want.dx, tol(84), "dx");
    assertClose(await readback(rt, h.t.dweight.t), want.dweight, tol(70), "dweight");
    assertClose(await readback(rt, h.t.dbias.t), want.dbias, tol(70), "dbias");
  },
);
