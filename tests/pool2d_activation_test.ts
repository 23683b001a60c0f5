import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, testRuntime } from "./util/gpu.ts";
import type { Random } from "../lib/random.ts";
import { readback, readbackU32, type Runtime, submit, tensor, upload } from "../lib/runtime.ts";
import { avgPool2d, maxPool2d, type PoolActivation } from "../lib/layers/pool2d.ts";
import { sigmoid, tanh } from "../lib/layers/activation.ts";
import { relu } from "../lib/layers/relu.ts";
import type { Layer, LayerOps } from "../lib/layers/layer.ts";
import { buildLayer } from "../lib/tier.ts";
import {
  avgPool2dBackward,
  avgPool2dForward,
  maxPool2dBackward,
  maxPool2dForward,
  type Pool2dShape,
} from "./reference/pool2d.ts";
import {
  sigmoidBackward,
  sigmoidForward,
  tanhBackward,
  tanhForward,
} from "./reference/activation.ts";
import { reluBackward, reluForward } from "./reference/relu.ts";

type Shape4 = [number, number, number, number];

const ACTIVATIONS: { name: PoolActivation; layer: () => Layer }[] = [
  { name: "tanh", layer: tanh },
  { name: "sigmoid", layer: sigmoid },
  { name: "relu", layer: relu },
];
const POOLS = [
  { kind: "avg", make: avgPool2d },
  { kind: "max", make: maxPool2d },
] as const;

/** Window, stride and input shapes of both backward schemes (tiles and the gather). */
const cases: { x: Shape4; kernelSize: number; stride?: number; why: string }[] = [
  { x: [32, 6, 28, 28], kernelSize: 2, why: "LeNet-5's S2" },
  { x: [33, 16, 10, 10], kernelSize: 2, why: "S4 at batch 33, a partial last workgroup" },
  { x: [3, 5, 7, 9], kernelSize: 3, stride: 2, why: "overlapping windows" },
  { x: [2, 3, 11, 13], kernelSize: 2, stride: 4, why: "gaps and floor mode's remainder" },
];

/** `layer` built over `x` (a tensor) with fresh y, dy, dx, in the runtime's tier. */
async function built(rt: Runtime, layer: Layer, x: ReturnType<typeof tensor>) {
  const shape = layer.outputShape(x.shape);
  const [y, dy, dx] = [tensor(rt, shape), tensor(rt, shape), tensor(rt, x.shape)];
  const ops: LayerOps = await buildLayer(rt.tier, layer, {
    rt,
    x,
    y,
    dy,
    dx,
    params: {},
    grads: {},
  });
  return { y, dy, dx, ops };
}

/**
 * x for an activation: most in [-4, 4], some where tanh and sigmoid saturate to exactly
 * +-1 or 0 and 1 (ties after the activation among distinct inputs), zeros of both signs.
 */
function inputs(rng: Random, n: number): Float32Array<ArrayBuffer> {
  const special = [20, 30, -20, -30, 100, -100, 0, -0];
  return Float32Array.from(
    { length: n },
    () => rng.int(4) === 0 ? special[rng.int(special.length)] : rng.uniform(-4, 4),
  );
}

const bits = (a: Float32Array | Uint32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function sameBits(got: Float32Array | Uint32Array, want: Float32Array | Uint32Array, what: string) {
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

Deno.test(
  "a pooling with its activation fused in gives the floats of the activation then the pooling, bit for bit",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(1);
    for (const c of cases) {
      for (const a of ACTIVATIONS) {
        for (const pool of POOLS) {
          const what = `${a.name} ${pool.kind} [${c.x}] (${c.why})`;
          const x = tensor(rt, c.x);
          const fused = await built(rt, pool.make({ ...c, activation: a.name }), x);
          const act = await built(rt, a.layer(), x);
          const apart = await built(rt, pool.make(c), act.y);
          // The pooling's gradient is the activation's output gradient.
          const actOps = await buildLayer(rt.tier, a.layer(), {
            rt,
            x,
            y: act.y,
            dy: apart.dx,
            dx: act.dx,
            params: {},
            grads: {},
          });
          upload(rt, x, inputs(rng, x.size));
          const dy = Float32Array.from(
            { length: fused.dy.size },
            () => rng.int(8) === 0 ? -0 : rng.uniform(-1, 1),
          );
          upload(rt, fused.dy, dy);
          upload(rt, apart.dy, dy);
          for (const t of [fused.dx, act.dx]) upload(rt, t, new Float32Array(t.size).fill(NaN));
          submit(rt, [
            ...fused.ops.train,
            ...fused.ops.backward,
            ...actOps.train,
            ...apart.ops.train,
            ...apart.ops.backward,
            ...actOps.backward,
          ]);
          sameBits(await readback(rt, fused.y), await readback(rt, apart.y), `${what} y`);
          sameBits(await readback(rt, fused.dx), await readback(rt, act.dx), `${what} dx`);
          if (pool.kind === "max") {
            sameBits(
              await readbackU32(rt, fused.ops.saved["argmax indices"]),
              await readbackU32(rt, apart.ops.saved["argmax indices"]),
              `${what} indices`,
            );
          }
        }
      }
    }
  },
);

/** The activations in float64: forward, and backward from the output (relu from the input). */
const REFERENCES: Record<
  PoolActivation,
  {
    forward: (x: Float64Array) => Float64Array;
    backward: (x: Float64Array, g: Float64Array) => Float64Array;
  }
> = {
  tanh: { forward: tanhForward, backward: (x, g) => tanhBackward(tanhForward(x), g) },
  sigmoid: { forward: sigmoidForward, backward: (x, g) => sigmoidBackward(sigmoidForward(x), g) },
  relu: { forward: reluForward, backward: reluBackward },
};

/**
 * x from {-2, -1.9, ..., 1.9}: equal inputs tie in f32 and f64 alike, and different ones stay
 * apart after the activation (by 7e-3 at least, below tanh's and sigmoid's saturation), so
 * the f32 and the f64 max agree on where it is.
 */
function separated(rng: Random, n: number): Float32Array<ArrayBuffer> {
  return Float32Array.from({ length: n }, () => rng.int(40) / 10 - 2);
}

Deno.test(
  "a pooling with its activation fused in matches the float64 reference",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(2);
    for (const c of cases) {
      const shape: Pool2dShape = {
        x: c.x,
        kernelSize: c.kernelSize,
        stride: c.stride ?? c.kernelSize,
      };
      for (const a of ACTIVATIONS) {
        for (const pool of POOLS) {
          const what = `${a.name} ${pool.kind} [${c.x}] (${c.why})`;
          const x = tensor(rt, c.x);
          const h = await built(rt, pool.make({ ...c, activation: a.name }), x);
          const xs = pool.kind === "max" ? separated(rng, x.size) : inputs(rng, x.size);
          const dy = Float32Array.from({ length: h.dy.size }, () => rng.uniform(-1, 1));
          upload(rt, x, xs);
          upload(rt, h.dy, dy);
          submit(rt, [...h.ops.train, ...h.ops.backward]);
          const ref = REFERENCES[a.name];
          const activated = ref.forward(Float64Array.from(xs));
          let y: Float64Array, g: Float64Array;
          if (pool.kind === "avg") {
            y = avgPool2dForward(activated, shape);
            g = avgPool2dBackward(dy, shape);
          } else {
            const want = maxPool2dForward(activated, shape);
            y = want.y;
            g = maxPool2dBackward(dy, want.indices, shape);
          }
          // exp is within a few ulp in f32 and tanh, sigmoid lie in [-1, 1]: a few ulp of 1
          // absolute; then a sum of at most 9 of them, or a copy.
          const tol = { atol: 1e-6, rtol: 1e-6 };
          assertClose(await readback(rt, h.y), y, tol, `${what} y`);
          assertClose(
            await readback(rt, h.dx),
            ref.backward(Float64Array.from(xs), g),
            tol,
            `${what} dx`,
          );
        }
      }
    }
  },
);

Deno.test("pool2d's activation option: its type, and a clear error for an unknown one", () => {
  const types = [
    avgPool2d({ kernelSize: 2, activation: "tanh" }).type,
    maxPool2d({ kernelSize: 3, stride: 2, activation: "relu" }).type,
    avgPool2d({ kernelSize: 2, activation: "sigmoid" }).type,
    avgPool2d({ kernelSize: 2 }).type,
  ];
  if (types.join() !== "Tanh+AvgPool2d,ReLU+MaxPool2d,Sigmoid+AvgPool2d,AvgPool2d") {
    throw new Error(types.join());
  }
  let message = "";
  try {
    avgPool2d({ kernelSize: 2, activation: "gelu" as PoolActivation });
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes('AvgPool2d: activation "gelu" is not one of tanh, sigmoid, relu')) {
    throw new Error(`"${message}"`);
  }
});
