import { assertClose } from "./util/assert_close.ts";
import {
  gpuTest,
  random,
  randomArray as randomArrayLike,
  tensorFrom,
  testRuntime,
  TIERS,
} from "./util/gpu.ts";
import {
  op,
  readback,
  type Runtime,
  submit,
  type Tensor,
  uniform,
  upload,
  view,
} from "../lib/runtime.ts";
import type { Layer } from "../lib/layers/layer.ts";
import type { Tier } from "../lib/tier.ts";
import { type LayerHarness, layerHarness } from "./util/layer.ts";
import { cpuKernel, textureMirror } from "../lib/cpu/texture.ts";
import { unusedStorageTexture } from "../lib/cpu/handoff.ts";
import { batchnorm2d } from "../lib/layers/batchnorm2d.ts";
import {
  batchnorm2dBackward,
  batchnorm2dEvalForward,
  batchnorm2dTrainForward,
  type Shape4,
} from "./reference/batchnorm2d.ts";

type Harness = LayerHarness;

// Built with `tier`'s kernels (the suite's, LENET_KERNELS, unless given).
function setup(rt: Runtime, layer: Layer, shape: number[], withDx = true, tier = rt.tier) {
  return layerHarness(rt, layer, shape, { dx: withDx, tier });
}

// randomArray's declared type (Float32Array<ArrayBufferLike>) is not accepted by upload().
const randomArray = (...args: Parameters<typeof randomArrayLike>) =>
  Float32Array.from(randomArrayLike(...args));
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

// Random parameters away from the defaults, so that weight, bias and the running statistics
// all show in the output.
function randomParams(seed: number, c: number) {
  const rng = random(seed);
  return {
    weight: randomArray(rng, c, 0.5, 1.5),
    bias: randomArray(rng, c, -0.5, 0.5),
    runningMean: randomArray(rng, c, -0.2, 0.2),
    runningVar: randomArray(rng, c, 0.5, 2),
  };
}

function uploadParams(rt: Runtime, h: Harness, p: ReturnType<typeof randomParams>): void {
  upload(rt, h.params.weight, p.weight);
  upload(rt, h.params.bias, p.bias);
  upload(rt, h.params.running_mean, p.runningMean);
  upload(rt, h.params.running_var, p.runningVar);
}

// Shapes chosen to break the kernels. Planes that are not a multiple of 4 floats (63, 25, 169,
// 9, 289), so that a texel holds floats of two planes (channels c and c+1, or the last channel
// of one image and channel 0 of the next) and the tensor ends inside a texel; planes of 1, 2
// and 3 floats, whose texels hold several planes; batch 1 with planes larger than a texel;
// channels that are not a multiple of 4, several workgroups of channels (20: 8 + 8 + 4), and
// the seed's two layers.
/**
 * Runs a training forward and the backward of `h` on x, dy and parameters p, and returns the
 * float64 reference backward. The reference takes the GPU's own y (its ReLU mask) and the
 * reference forward's statistics.
 */
async function runBackward(
  rt: Runtime,
  h: Harness,
  data: {
    x: Float32Array<ArrayBuffer>;
    dy: Float32Array<ArrayBuffer>;
    shape: Shape4;
    p: ReturnType<typeof randomParams>;
  },
  relu: boolean,
) {
  const { x, dy, shape, p } = data;
  upload(rt, h.x, x);
  upload(rt, h.dy, dy);
  uploadParams(rt, h, p);
  submit(rt, [...h.ops.train, ...h.ops.backward]);
  const y = await readback(rt, h.y);
  const fwd = batchnorm2dTrainForward({ x, shape }, p, { relu });
  return batchnorm2dBackward({ x, y, shape, mean: fwd.mean, invstd: fwd.invstd }, {
    dy,
    weight: p.weight,
  }, { relu });
}

const SHAPES: Shape4[] = [
  [1, 3, 3, 3],
  [3, 5, 7, 9],
  [33, 3, 5, 5],
  [2, 4, 13, 13],
  [5, 3, 1, 1],
  [3, 3, 1, 2],
  [3, 3, 3, 1],
  [1, 4, 17, 17],
  [2, 20, 3, 3],
  [32, 16, 13, 13],
  [32, 32, 5, 5],
];

Deno.test("batchnorm2d reference backward matches central finite differences (f64)", () => {
  const rng = random(1);
  const shape: Shape4 = [3, 2, 3, 2];
  const n = numel(shape);
  for (const relu of [false, true]) {
    const x = Float64Array.from(randomArray(rng, n, -1, 1));
    const r = Float64Array.from(randomArray(rng, n, -1, 1));
    const p = randomParams(2, 2);
    const loss = (xs: Float64Array, weight: ArrayLike<number>, bias: ArrayLike<number>) =>
      dot(batchnorm2dTrainForward({ x: xs, shape }, { ...p, weight, bias }, { relu }).y, r);
    const fwd = batchnorm2dTrainForward({ x, shape }, p, { relu });
    const g = batchnorm2dBackward({ x, shape, ...fwd }, { dy: r, weight: p.weight }, { relu });
    const eps = 1e-6;
    const fd = (f: (d: number) => number) => (f(eps) - f(-eps)) / (2 * eps);
    const dx = x.map((_, i) =>
      fd((d) => {
        const xs = x.slice();
        xs[i] += d;
        return loss(xs, p.weight, p.bias);
      })
    );
    const perturb = (a: ArrayLike<number>, i: number, d: number) => {
      const b = Float64Array.from(a);
      b[i] += d;
      return b;
    };
    const dweight = p.weight.map((_, i) => fd((d) => loss(x, perturb(p.weight, i, d), p.bias)));
    const dbias = p.bias.map((_, i) => fd((d) => loss(x, p.weight, perturb(p.bias, i, d))));
    // Central differences in f64 with eps 1e-6: truncation ~1e-12, rounding ~1e-10.
    const tol = { atol: 1e-6, rtol: 1e-6 };
    assertClose(g.dx, dx, tol, `dx (relu ${relu})`);
    assertClose(g.dweight, dweight, tol, `dweight (relu ${relu})`);
    assertClose(g.dbias, dbias, tol, `dbias (relu ${relu})`);
  }
});

Deno.test(
  "batchnorm2d train_forward matches the reference on straddled texels, batch 1, many channels",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(3);
    for (const tier of TIERS) {
      for (const shape of SHAPES) {
        for (const relu of [false, true]) {
          await trainForwardCase(rt, rng, tier, shape, relu);
        }
      }
    }
  },
);

async function trainForwardCase(
  rt: Runtime,
  rng: ReturnType<typeof random>,
  tier: Tier,
  shape: Shape4,
  relu: boolean,
) {
  const c = shape[1];
  const h = await setup(rt, batchnorm2d(c, { relu }), [...shape], true, tier);
  // An offset of 3 makes a one-pass E[x^2] - E[x]^2 lose digits; Welford's does not.
  const x = randomArray(rng, numel(shape), 2, 4);
  const p = randomParams(4, c);
  upload(rt, h.x, x);
  uploadParams(rt, h, p);
  submit(rt, h.ops.train);
  const ref = batchnorm2dTrainForward({ x, shape }, p, { relu });
  const label = `${tier.name} [${shape}] relu ${relu}`;
  // Welford in f32 per plane, the planes then combined (the wing), or two passes of workgroup
  // sums (plain): the mean of values near 3 carries an error of a few ulp of 3 (1e-7 each),
  // which y = (x - mean) * invstd * weight + bias multiplies by up to invstd * weight ~ 2.6,
  // plus the ulp of y itself (values up to ~4);
  // measured worst 1.2e-6, on the seed's shapes.
  const tol = { atol: 5e-6, rtol: 5e-6 };
  assertClose(await readback(rt, h.y), ref.y, tol, `y ${label}`);
  // The running statistics are O(1) blends of the mean and variance: measured worst 1.4e-7.
  const stat = { atol: 1e-6, rtol: 1e-6 };
  assertClose(
    await readback(rt, h.params.running_mean),
    ref.runningMean,
    stat,
    `rm ${label}`,
  );
  assertClose(await readback(rt, h.params.running_var), ref.runningVar, stat, `rv ${label}`);
}

Deno.test(
  "batchnorm2d leaves the floats past the tensor's end in its last texel alone",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(17);
    // 27 values: the last texel holds 3 of them and one float past the end.
    for (const shape of [[1, 3, 3, 3], [3, 3, 1, 3]] as Shape4[]) {
      const c = shape[1], n = numel(shape);
      const h = await setup(rt, batchnorm2d(c, { relu: true }), [...shape]);
      const texels = (t: Tensor) => view(t, 0, [Math.ceil(n / 4) * 4], `${t.label} texels`);
      const sentinel = new Float32Array(Math.ceil(n / 4) * 4).fill(-7);
      upload(rt, texels(h.y), sentinel);
      upload(rt, texels(h.dx!), sentinel);
      upload(rt, h.x, randomArray(rng, n, -1, 1));
      upload(rt, h.dy, randomArray(rng, n, -1, 1));
      uploadParams(rt, h, randomParams(18, c));
      for (const ops of [h.ops.train, h.ops.backward, h.ops.eval]) {
        submit(rt, ops);
        for (const t of [h.y, h.dx!]) {
          const all = await readback(rt, texels(t));
          assertClose(all.subarray(n), sentinel.subarray(n), { atol: 0, rtol: 0 }, `${t.label}`);
          // And every float of the tensor was written (the ReLU's outputs are >= 0).
          if (t === h.y && all.subarray(0, n).some((v) => v === -7)) {
            throw new Error(`[${shape}] y: a float was not written`);
          }
        }
      }
    }
  },
);

Deno.test(
  "batchnorm2d eval_forward uses the running statistics, the batch in slices (some empty)",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(5);
    // Texels that cross channels (49, 9) and images, or several channels at once (1); 128
    // slices of 3 images for a batch of 300, the last 28 of them empty.
    const shapes = [[33, 5, 7, 7], [1, 3, 3, 3], [3, 5, 1, 1], [300, 2, 3, 3]] as Shape4[];
    for (const [tier, shape] of TIERS.flatMap((t) => shapes.map((s) => [t, s] as const))) {
      for (const relu of [false, true]) {
        const c = shape[1];
        const h = await setup(rt, batchnorm2d(c, { relu }), [...shape], true, tier);
        const x = randomArray(rng, numel(shape), -2, 2);
        const p = randomParams(6, c);
        upload(rt, h.x, x);
        uploadParams(rt, h, p);
        submit(rt, h.ops.eval);
        const ref = batchnorm2dEvalForward({ x, shape }, p, { relu });
        // Elementwise in f32: a few ulp of values below 10.
        const label = `${tier.name} y [${shape}]`;
        assertClose(await readback(rt, h.y), ref, { atol: 1e-6, rtol: 1e-6 }, label);
        // Eval must leave the running statistics alone.
        assertClose(
          await readback(rt, h.params.running_var),
          p.runningVar,
          { atol: 0, rtol: 0 },
          "rv",
        );
      }
    }
  },
);

Deno.test(
  "batchnorm2d (CPU wing) eval_forward indexes invocations over a 2-D grid of workgroups",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(15);
    const shape: Shape4 = [7, 5, 7, 7];
    const h = await setup(rt, batchnorm2d(5, { relu: true }), [...shape], true, TIERS[1]);
    const x = randomArray(rng, numel(shape), -2, 2);
    const p = randomParams(16, 5);
    upload(rt, h.x, x);
    uploadParams(rt, h, p);
    // 35 invocations (5 channels x 7 slices of one image) in 3 x 2 workgroups of 8, as grid()
    // lays them out past 65,535.
    const k = await cpuKernel(rt, "batchnorm2d.wgsl", "eval_forward", {
      BATCH: 7,
      CHANNELS: 5,
      PLANE: 49,
      RELU: 1,
      WORKGROUP: 8,
      SLICES: 7,
    });
    const u = uniform(rt, "bn", { "f32:eps": 1e-5, "f32:momentum": 0, input_grad: 0 });
    const { weight, bias, running_mean, running_var } = h.params;
    const xt = textureMirror(rt, h.x);
    const y4 = view(h.y, 0, [Math.ceil(h.y.size / 4), 4], "y (vec4)");
    const y4t = unusedStorageTexture(rt); // no packed y (lib/cpu/handoff.ts)
    const pooled = tensorFrom(rt, [1], new Float32Array(1)); // no fused pool
    const bindings = [xt, weight, bias, running_mean, running_var, y4, u, y4t, pooled];
    submit(rt, [xt.copy, op(rt, k, bindings, [3, 2])]);
    const ref = batchnorm2dEvalForward({ x, shape }, p, { relu: true });
    assertClose(await readback(rt, h.y), ref, { atol: 1e-6, rtol: 1e-6 }, "y");
  },
);

Deno.test(
  "batchnorm2d backward matches the reference, with and without the fused ReLU",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(7);
    for (const [tier, shape] of TIERS.flatMap((t) => SHAPES.map((s) => [t, s] as const))) {
      for (const relu of [false, true]) {
        const c = shape[1], n = numel(shape);
        const h = await setup(rt, batchnorm2d(c, { relu }), [...shape], true, tier);
        const x = randomArray(rng, n, -1, 3);
        const dy = randomArray(rng, n, -1, 1);
        const ref = await runBackward(rt, h, { x, dy, shape, p: randomParams(8, c) }, relu);
        const label = `${tier.name} [${shape}] relu ${relu}`;
        // dx = k (M g - sum g - xhat sum g xhat): the terms cancel, so the f32 error scales
        // with the largest |dx| rather than with each value; measured worst 2.6e-7 * scale.
        const scale = ref.dx.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
        const dxTol = { atol: 1e-6 * scale, rtol: 1e-6 };
        assertClose(await readback(rt, h.dx!), ref.dx, dxTol, `dx ${label}`);
        // Sums of M = N*H*W terms of size ~1 (partly cancelling), per plane and then over the
        // planes: error ~1e-7 * sqrt(M); measured worst 5e-7 * sqrt(M).
        const sums = { atol: 1e-6 * Math.sqrt(n / c), rtol: 1e-6 };
        assertClose(await readback(rt, h.grads.weight), ref.dweight, sums, `dweight ${label}`);
        assertClose(await readback(rt, h.grads.bias), ref.dbias, sums, `dbias ${label}`);
      }
    }
  },
);

Deno.test(
  "batchnorm2d backward without dx (a first layer) still writes the parameter gradients",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(9);
    const shape: Shape4 = [3, 5, 7, 9];
    const n = numel(shape);
    for (const relu of [false, true]) {
      const h = await setup(rt, batchnorm2d(5, { relu }), [...shape], false);
      const x = randomArray(rng, n, -1, 1), dy = randomArray(rng, n, -1, 1);
      const ref = await runBackward(rt, h, { x, dy, shape, p: randomParams(10, 5) }, relu);
      // Sums of 189 terms of size ~1 in f32: measured worst 7e-7.
      const sums = { atol: 1e-5, rtol: 1e-6 };
      assertClose(await readback(rt, h.grads.weight), ref.dweight, sums, `dweight relu ${relu}`);
      assertClose(await readback(rt, h.grads.bias), ref.dbias, sums, `dbias relu ${relu}`);
    }
  },
);

Deno.test("batchnorm2d training step is bit-identical run to run", gpuTest, async () => {
  const rt = await testRuntime();
  const rng = random(11);
  const shape: Shape4 = [32, 16, 13, 13];
  const n = numel(shape);
  const h = await setup(rt, batchnorm2d(16, { relu: true }), [...shape]);
  const x = randomArray(rng, n, -1, 1), dy = randomArray(rng, n, -1, 1);
  const results: Float32Array[][] = [];
  for (let run = 0; run < 2; run++) {
    upload(rt, h.x, x);
    upload(rt, h.dy, dy);
    uploadParams(rt, h, randomParams(12, 16));
    submit(rt, [...h.ops.train, ...h.ops.backward]);
    results.push(
      await Promise.all(
        [h.y, h.dx!, h.grads.weight, h.grads.bias, h.params.running_var].map((t) =>
          readback(rt, t)
        ),
      ),
    );
  }
  results[0].forEach((a, i) => assertClose(results[1][i], a, { atol: 0, rtol: 0 }, `output ${i}`));
});

Deno.test(
  "batchnorm2d GPU backward matches a directional derivative of the GPU forward",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(13);
    for (
      const [shape, relu] of [[[3, 5, 7, 9], true], [[33, 3, 5, 5], false]] as [Shape4, boolean][]
    ) {
      const c = shape[1], n = numel(shape);
      const h = await setup(rt, batchnorm2d(c, { relu }), [...shape]);
      const x = randomArray(rng, n, -1, 1), vx = randomArray(rng, n, -1, 1);
      const p = randomParams(14, c);
      const vw = randomArray(rng, c, -1, 1), vb = randomArray(rng, c, -1, 1);
      // r weighs the loss sum(y * r); zeroed where the pre-activation lies within 0.25 of the
      // ReLU's kink, so that no perturbation of size eps = 1e-2 straddles it.
      const pre = batchnorm2dTrainForward({ x, shape }, p).y;
      const r = randomArray(rng, n, -1, 1).map((v, i) => relu && Math.abs(pre[i]) < 0.25 ? 0 : v);
      const eps = 1e-2;
      const lossAt = async (t: number) => {
        upload(rt, h.x, x.map((v, i) => v + t * vx[i]));
        upload(rt, h.params.weight, p.weight.map((v, i) => v + t * vw[i]));
        upload(rt, h.params.bias, p.bias.map((v, i) => v + t * vb[i]));
        submit(rt, h.ops.train);
        return dot(await readback(rt, h.y), r);
      };
      const fd = (await lossAt(eps) - await lossAt(-eps)) / (2 * eps);
      await lossAt(0);
      upload(rt, h.dy, r);
      submit(rt, h.ops.backward);
      const analytic = dot(await readback(rt, h.dx!), vx) +
        dot(await readback(rt, h.grads.weight), vw) + dot(await readback(rt, h.grads.bias), vb);
      // f32 outputs summed in f64: the difference quotient carries ~1e-7 * sqrt(n) / eps of
      // rounding, plus the eps^2 truncation of the smooth normalization; measured worst 3e-5.
      assertClose([fd], [analytic], { atol: 1e-4, rtol: 1e-4 }, `<grad, v> [${shape}]`);
    }
  },
);

Deno.test(
  "batchnorm2d CPU-wing kernels match the plain ones on odd shapes, batch 1, many channels",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const rng = random(19);
    // Batch 1 with a plane of 289 floats, the seed's BN2 (5,408 values a channel: 21 or 22
    // for each of the plain sums' 256 invocations), 20 channels (several of the wing's
    // workgroups of 8) and planes of 1 float over a batch of 300.
    for (const shape of [[1, 4, 17, 17], [32, 16, 13, 13], [2, 20, 3, 3], [300, 3, 1, 1]]) {
      const c = shape[1], n = numel(shape);
      const x = randomArray(rng, n, -1, 3), dy = randomArray(rng, n, -1, 1);
      const p = randomParams(20, c);
      const outputs: Float32Array[][] = [];
      for (const tier of TIERS) {
        const h = await setup(rt, batchnorm2d(c, { relu: true }), shape, true, tier);
        upload(rt, h.x, x);
        upload(rt, h.dy, dy);
        uploadParams(rt, h, p);
        submit(rt, [...h.ops.train, ...h.ops.backward]);
        const tensors = [h.y, h.dx!, h.grads.weight, h.grads.bias, h.params.running_var];
        outputs.push(await Promise.all(tensors.map((t) => readback(rt, t))));
      }
      const [plain, cpu] = outputs;
      // Both are f32 sums of the same M = N*H*W terms in another order: y within a few ulp of
      // its magnitude (as against the reference), dx relative to its largest value, the sums
      // within 1e-6 * sqrt(M) (see the reference tests above).
      const m = n / c;
      const scale = plain[1].reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      const names = ["y", "dx", "dweight", "dbias", "running_var"];
      const tols = [
        { atol: 5e-6, rtol: 5e-6 },
        { atol: 2e-6 * scale, rtol: 2e-6 },
        { atol: 2e-6 * Math.sqrt(m), rtol: 2e-6 },
        { atol: 2e-6 * Math.sqrt(m), rtol: 2e-6 },
        { atol: 1e-6, rtol: 1e-6 },
      ];
      names.forEach((name, i) => assertClose(cpu[i], plain[i], tols[i], `${name} [${shape}]`));
    }
  },
);
