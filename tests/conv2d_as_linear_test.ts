import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray, tensorFrom, testRuntime } from "./util/gpu.ts";
import type { Random } from "../lib/random.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dForward,
  type Conv2dShape,
} from "./reference/conv2d.ts";
import { conv2dAsLinear } from "../lib/layers/conv2d_as_linear.ts";
import { numel, readback, submit, upload } from "../lib/runtime.ts";

/** randomArray, typed for upload() (randomArray's declared type allows a shared buffer). */
function floats(rng: Random, n: number): Float32Array<ArrayBuffer> {
  return new Float32Array(randomArray(rng, n));
}
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

async function setup(n: number, c: number, k: number, r: number) {
  const rt = await testRuntime();
  const rng = random(n + c + k + r);
  const x = [n, c, r, r], y = [n, k, 1, 1], w = [k, c, r, r];
  const data = {
    x: floats(rng, numel(x)),
    weight: floats(rng, numel(w)),
    bias: floats(rng, k),
    dy: floats(rng, numel(y)),
  };
  const t = {
    x: tensorFrom(rt, x, data.x),
    y: tensorFrom(rt, y, new Float32Array(numel(y))),
    dy: tensorFrom(rt, y, data.dy),
    dx: tensorFrom(rt, x, new Float32Array(numel(x))),
    weight: tensorFrom(rt, w, data.weight),
    bias: tensorFrom(rt, [k], data.bias),
    dweight: tensorFrom(rt, w, new Float32Array(numel(w))),
    dbias: tensorFrom(rt, [k], new Float32Array(k)),
  };
  const ops = await conv2dAsLinear({ inChannels: c, outChannels: k, kernelSize: r }).build({
    rt,
    ...t,
    params: { weight: t.weight, bias: t.bias },
    grads: { weight: t.dweight, bias: t.dbias },
  });
  const shape: Conv2dShape = { x: [n, c, r, r], weight: [k, c, r, r], stride: 1, padding: 0 };
  return { rt, data, t, ops, shape };
}

Deno.test(
  "a Conv2d over its whole input, run as a matrix product, matches the Conv2d reference",
  gpuTest,
  async () => {
    // LeNet-5's C5 at batch 1 and 33; channel and output counts that are not multiples of 4.
    for (const [n, c, k, r] of [[1, 16, 120, 5], [33, 16, 120, 5], [3, 5, 7, 3]]) {
      const { rt, data, t, ops, shape } = await setup(n, c, k, r);
      submit(rt, [...ops.train, ...ops.backward]);
      // Sums of C*R*R (or N) products of values in [-1, 1]: ~terms * 6e-8, 16 times that.
      const tol = (terms: number) => ({ atol: 1e-6 + 16 * 6e-8 * terms, rtol: 1e-5 });
      const what = `[${n},${c},${r},${r}] -> ${k}`;
      assertClose(await readback(rt, t.y), conv2dForward(shape, data), tol(c * r * r), `${what} y`);
      assertClose(await readback(rt, t.dx), conv2dBackwardInput(shape, data), tol(k), `${what} dx`);
      const want = conv2dBackwardWeight(shape, data);
      assertClose(await readback(rt, t.dweight), want.dw, tol(n), `${what} dw`);
      assertClose(await readback(rt, t.dbias), want.db, tol(n), `${what} db`);
    }
  },
);

Deno.test(
  "conv2dAsLinear keeps Conv2d's parameters and refuses an input its kernel does not cover",
  () => {
    const layer = conv2dAsLinear({ inChannels: 16, outChannels: 120, kernelSize: 5 });
    const shapes = layer.params.map((p) => `${p.name} [${p.shape}] ${JSON.stringify(p.init)}`);
    const bound = 1 / Math.sqrt(400);
    const expected = [
      `weight [120,16,5,5] {"uniform":${bound}}`,
      `bias [120] {"uniform":${bound}}`,
    ];
    if (shapes.join() !== expected.join()) throw new Error(shapes.join("; "));
    let message = "";
    try {
      layer.outputShape([32, 16, 6, 6]);
    } catch (e) {
      message = (e as Error).message;
    }
    if (!message.includes("is not [N, 16, 5, 5]")) throw new Error(`"${message}"`);
  },
);

Deno.test(
  "conv2dAsLinear GPU backward matches a directional derivative of the GPU forward",
  gpuTest,
  async () => {
    const { rt, data, t, ops } = await setup(32, 16, 120, 5);
    const rng = random(11);
    const dir = { x: floats(rng, data.x.length), weight: floats(rng, data.weight.length) };
    const eps = 1e-2;
    const lossAt = async (s: number) => {
      upload(rt, t.x, data.x.map((v, i) => v + s * dir.x[i]));
      upload(rt, t.weight, data.weight.map((v, i) => v + s * dir.weight[i]));
      submit(rt, ops.train);
      return dot(await readback(rt, t.y), data.dy);
    };
    const fd = (await lossAt(eps) - await lossAt(-eps)) / (2 * eps);
    upload(rt, t.x, data.x);
    upload(rt, t.weight, data.weight);
    submit(rt, ops.backward);
    const analytic = dot(await readback(rt, t.dx), dir.x) +
      dot(await readback(rt, t.dweight), dir.weight);
    // Bilinear: exact up to the f32 rounding of y (sums of 400 products, ~1e-6 each over
    // 3,840 outputs) over eps: ~1e-2, against <grad, v> of ~3e2. Measured 8e-3.
    assertClose([fd], [analytic], { atol: 2e-2, rtol: 1e-5 }, "<grad, v>");
  },
);
