import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, testRuntime } from "./util/gpu.ts";
import type { Random } from "../lib/random.ts";
import {
  numel,
  type Op,
  readback,
  type Runtime,
  submit,
  type Tensor,
  tensor,
  upload,
  view,
} from "../lib/runtime.ts";
import type { Layer } from "../lib/layers/layer.ts";
import { linear } from "../lib/layers/linear.ts";
import { conv2dAsLinear } from "../lib/layers/conv2d_as_linear.ts";
import type { FusedActivation } from "../lib/layers/fused_activation.ts";
import { sigmoid, tanh } from "../lib/layers/activation.ts";
import { relu } from "../lib/layers/relu.ts";
import { buildLayer, PLAIN_TIER, type Tier } from "../lib/tier.ts";
import { buildLinear } from "../lib/cpu/linear.ts";
import { linearBackward, linearForward, type LinearShape } from "./reference/linear.ts";
import {
  sigmoidBackward,
  sigmoidForward,
  tanhBackward,
  tanhForward,
} from "./reference/activation.ts";
import { reluBackward, reluForward } from "./reference/relu.ts";

/** The wing's Linear at every size (the CPU tier builds it only where it pays), plain for the rest. */
const WING: Tier = {
  name: "cpu",
  build: (layer, ctx) => layer.family === "linear" ? buildLinear(layer, ctx) : undefined,
};
const TIERS = [PLAIN_TIER, WING];

/** The activation layers apart, and their float64 references (relu's backward from y > 0). */
const ACTIVATIONS: {
  name: FusedActivation;
  layer: () => Layer;
  forward: (z: ArrayLike<number>) => Float64Array;
  backward: (y: ArrayLike<number>, dy: ArrayLike<number>) => Float64Array;
}[] = [
  { name: "tanh", layer: tanh, forward: tanhForward, backward: tanhBackward },
  { name: "sigmoid", layer: sigmoid, forward: sigmoidForward, backward: sigmoidBackward },
  { name: "relu", layer: relu, forward: reluForward, backward: reluBackward },
];

// Batch 1 and 1x1; features that are not multiples of 4 (the wing's rows straddle texels);
// LeNet-5's F6 at batch 32, where tanh saturates to +-1 for many outputs.
const SHAPES: LinearShape[] = [
  { batch: 1, inFeatures: 1, outFeatures: 1 },
  { batch: 3, inFeatures: 7, outFeatures: 5 },
  { batch: 2, inFeatures: 3, outFeatures: 8 },
  { batch: 32, inFeatures: 120, outFeatures: 84 },
];

/** Floats around every view: a kernel that reads or writes past its view meets them. */
const MARGIN = 64;
/** What surrounds an output: a write past its view changes it. */
const OUTSIDE = -7;

/** A view of `shape` at element MARGIN of a buffer of its own with MARGIN floats after it. */
function framed(rt: Runtime, shape: number[], label: string): { t: Tensor; all: Tensor } {
  const size = numel(shape);
  const all = tensor(rt, [MARGIN + Math.ceil(size / MARGIN) * MARGIN + MARGIN], { label });
  return { t: view(all, MARGIN, shape, label), all };
}

/** Fills a framed view: `inside` in it, `around` everywhere else in its buffer. */
function fill(rt: Runtime, f: { t: Tensor; all: Tensor }, inside: Float32Array, around: number) {
  const data = new Float32Array(f.all.size).fill(around);
  data.set(inside, MARGIN);
  upload(rt, f.all, data);
}

async function assertFrameKept(rt: Runtime, f: { t: Tensor; all: Tensor }, what: string) {
  const all = await readback(rt, f.all);
  const around = [...all.subarray(0, MARGIN), ...all.subarray(MARGIN + f.t.size)];
  assertClose(around, around.map(() => OUTSIDE), { atol: 0, rtol: 0 }, `${what}: around`);
}

interface Case {
  x: Float32Array<ArrayBuffer>;
  weight: Float32Array<ArrayBuffer>;
  bias: Float32Array<ArrayBuffer>;
  dy: Float32Array<ArrayBuffer>;
}

/**
 * x and the weight in [-2, 2] and [-1, 1] (F6's sums reach +-10: tanh and sigmoid saturate),
 * the last output's weights and bias 0 (a sum of exactly +0, where relu's gradient is 0), dy
 * with some -0.
 */
function randomCase(rng: Random, s: LinearShape): Case {
  const { batch, inFeatures: ins, outFeatures: outs } = s;
  const values = (n: number, bound: number) =>
    Float32Array.from({ length: n }, () => rng.uniform(-bound, bound));
  const weight = values(outs * ins, 1), bias = values(outs, 1);
  if (outs > 1) {
    weight.fill(0, (outs - 1) * ins);
    bias[outs - 1] = 0;
  }
  const dy = Float32Array.from(
    { length: batch * outs },
    () => rng.int(8) === 0 ? -0 : rng.uniform(-1, 1),
  );
  return { x: values(batch * ins, 2), weight, bias, dy };
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function sameBits(got: Float32Array, want: Float32Array, what: string) {
  const [g, w] = [bits(got), bits(want)];
  if (g.length !== w.length) throw new Error(`${what}: ${g.length} values, not ${w.length}`);
  const at = g.findIndex((v, i) => v !== w[i]);
  if (at >= 0) {
    const differ = g.filter((v, i) => v !== w[i]).length;
    throw new Error(
      `${what}: ${differ} of ${g.length} differ, first [${at}]: ${got[at]} vs ${want[at]}`,
    );
  }
}

/**
 * Runs `fused` (a layer with the activation in it) and the pair `layer` then `act` apart,
 * both with `tier`, over framed views, from `data` (x of shape `xShape`), every output
 * NaN-filled first; checks the frames and returns both results.
 */
async function fusedAndApart(
  rt: Runtime,
  tier: Tier,
  layers: { fused: Layer; layer: Layer; act: Layer },
  xShape: number[],
  data: Case,
) {
  const yShape = layers.fused.outputShape(xShape);
  const [weightShape, biasShape] = layers.fused.params.map((p) => p.shape);
  const make = (what: string) => ({
    x: framed(rt, xShape, `${what} x`),
    y: framed(rt, yShape, `${what} y`),
    dy: framed(rt, yShape, `${what} dy`),
    dx: framed(rt, xShape, `${what} dx`),
    weight: framed(rt, weightShape, `${what} weight`),
    bias: framed(rt, biasShape, `${what} bias`),
    dweight: framed(rt, weightShape, `${what} dweight`),
    dbias: framed(rt, biasShape, `${what} dbias`),
  });
  const [f, a] = [make("fused"), make("apart")];
  // Apart: the Linear writes z and reads dz, which the activation reads and writes.
  const z = framed(rt, yShape, "z"), dz = framed(rt, yShape, "dz");
  const ctx = (t: typeof f, y: Tensor, dy: Tensor) => ({
    rt,
    x: t.x.t,
    y,
    dy,
    dx: t.dx.t,
    params: { weight: t.weight.t, bias: t.bias.t },
    grads: { weight: t.dweight.t, bias: t.dbias.t },
  });
  const fusedOps = await buildLayer(tier, layers.fused, ctx(f, f.y.t, f.dy.t));
  const layerOps = await buildLayer(tier, layers.layer, ctx(a, z.t, dz.t));
  const actOps = await buildLayer(tier, layers.act, {
    rt,
    x: z.t,
    y: a.y.t,
    dy: a.dy.t,
    dx: dz.t,
    params: {},
    grads: {},
  });
  const outputs = (t: typeof f) => [t.y, t.dx, t.dweight, t.dbias];
  for (const t of [f, a]) {
    fill(rt, t.x, data.x, NaN);
    fill(rt, t.dy, data.dy, NaN);
    fill(rt, t.weight, data.weight, NaN);
    fill(rt, t.bias, data.bias, NaN);
    for (const o of outputs(t)) fill(rt, o, new Float32Array(o.t.size).fill(NaN), OUTSIDE);
  }
  for (const o of [z, dz]) fill(rt, o, new Float32Array(o.t.size).fill(NaN), OUTSIDE);
  const ops: Op[] = [
    ...fusedOps.train,
    ...fusedOps.backward,
    ...layerOps.train,
    ...actOps.train,
    ...actOps.backward,
    ...layerOps.backward,
  ];
  submit(rt, ops);
  const results = [];
  for (const t of [f, a]) {
    for (const o of outputs(t)) await assertFrameKept(rt, o, `${tier.name} ${o.t.label}`);
    results.push({
      y: await readback(rt, t.y.t),
      dx: await readback(rt, t.dx.t),
      dweight: await readback(rt, t.dweight.t),
      dbias: await readback(rt, t.dbias.t),
    });
  }
  for (const o of [z, dz]) await assertFrameKept(rt, o, `${tier.name} ${o.t.label}`);
  return { fused: results[0], apart: results[1], fusedOps };
}

/** f32 sums of K products of values in [-2, 2]: error ~ K * 2.4e-7 at worst; atol per K. */
const tol = (k: number) => ({ atol: 3e-7 * k, rtol: 1e-5 });

Deno.test(
  "a Linear with its activation fused in gives the floats of the Linear then the activation, bit for bit, in both tiers, close to f64",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(7);
    for (const shape of SHAPES) {
      const { batch, inFeatures: ins, outFeatures: outs } = shape;
      for (const act of ACTIVATIONS) {
        const data = randomCase(rng, shape);
        const y = act.forward(linearForward(data, shape));
        const want = { y, ...linearBackward({ ...data, dy: act.backward(y, data.dy) }, shape) };
        for (const tier of TIERS) {
          const what = `${tier.name} ${act.name} [${batch}, ${ins}] -> ${outs}`;
          const fused = linear(ins, outs, { activation: act.name });
          const { fused: got, apart } = await fusedAndApart(
            rt,
            tier,
            { fused, layer: linear(ins, outs), act: act.layer() },
            [batch, ins],
            data,
          );
          for (const k of ["y", "dx", "dweight", "dbias"] as const) {
            sameBits(got[k], apart[k], `${what} ${k}, fused vs apart`);
          }
          assertClose(got.y, want.y, tol(ins), `y ${what}`);
          assertClose(got.dx, want.dx, tol(outs), `dx ${what}`);
          assertClose(got.dweight, want.dweight, tol(batch * 2), `dweight ${what}`);
          assertClose(got.dbias, want.dbias, tol(batch), `dbias ${what}`);
        }
      }
    }
  },
);

Deno.test(
  "conv2dAsLinear with tanh fused in (LeNet-5's C5) equals the conv then the tanh, bit for bit, in both tiers",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(8);
    const c5 = { inChannels: 16, outChannels: 120, kernelSize: 5 };
    for (const batch of [1, 5]) {
      const shape = { batch, inFeatures: 400, outFeatures: 120 };
      const data = randomCase(rng, shape);
      for (const tier of TIERS) {
        const what = `${tier.name} C5 at batch ${batch}`;
        const { fused: got, apart, fusedOps } = await fusedAndApart(
          rt,
          tier,
          {
            fused: conv2dAsLinear({ ...c5, activation: "tanh" }),
            layer: conv2dAsLinear(c5),
            act: tanh(),
          },
          [batch, 16, 5, 5],
          data,
        );
        for (const k of ["y", "dx", "dweight", "dbias"] as const) {
          sameBits(got[k], apart[k], `${what} ${k}, fused vs apart`);
        }
        // One dispatch forward (the wing adds its texture copies); backward one in the plain
        // tier, two in the wing (the activation's backward runs apart there: lib/cpu/linear.ts).
        const dispatches = (ops: Op[]) => ops.filter((o) => "kernel" in o).length;
        const counts = [dispatches(fusedOps.train), dispatches(fusedOps.backward)];
        const want = tier === WING ? [1, 2] : [1, 1];
        if (counts.join() !== want.join()) {
          throw new Error(`${what}: ${counts} dispatches forward and backward, not ${want}`);
        }
      }
    }
  },
);

Deno.test("fused Linear types, and a clear error for an unknown activation", () => {
  const types = [
    linear(120, 84, { activation: "tanh" }).type,
    linear(120, 84, { activation: "relu" }).type,
    conv2dAsLinear({ inChannels: 16, outChannels: 120, kernelSize: 5, activation: "sigmoid" })
      .type,
    linear(120, 84).type,
  ];
  if (types.join(" ") !== "Linear+Tanh Linear+ReLU Conv2d+Sigmoid Linear") {
    throw new Error(`types: ${types.join(" ")}`);
  }
  let message = "";
  try {
    linear(3, 4, { activation: "gelu" as FusedActivation });
  } catch (e) {
    message = (e as Error).message;
  }
  if (message !== 'Linear: activation "gelu" is not one of tanh, sigmoid, relu') {
    throw new Error(`unexpected error: ${message}`);
  }
});
