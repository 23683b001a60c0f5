import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray, tensorFrom, testRuntime } from "./util/gpu.ts";
import { adamwReference } from "./reference/adamw.ts";
import { createAdamW } from "../lib/adamw.ts";
import { createStepState } from "../lib/step_state.ts";
import { readback, type Runtime, submit, tensor, upload } from "../lib/runtime.ts";

// p moves by ~lr a step: f32 rounding of p (|p| < 1) and of the update, a few ulp.
const P_TOLERANCE = { atol: 1e-7, rtol: 1e-6 };
// m = m + (1 - beta1) (g - m) in f32: g - m may cancel, so an absolute part of ~ulp(1).
const M_TOLERANCE = { atol: 1e-7, rtol: 1e-6 };
// v = beta2 v + (1 - beta2) g^2: a sum of positive terms, relative error only.
const V_TOLERANCE = { atol: 0, rtol: 1e-6 };

interface Run {
  /** Parameters, m and v after each step. */
  steps: { p: Float32Array; m: Float32Array; v: Float32Array }[];
  /** The floats of the flat buffer past n, after the last step. */
  rest: Float32Array;
}

/** Runs AdamW over `grads.length` steps from step counter `start`, advancing the state between. */
async function runAdamW(
  rt: Runtime,
  p0: Float32Array<ArrayBuffer>,
  options: {
    grads: Float32Array<ArrayBuffer>[];
    start: number;
    lr: number;
    weightDecay: number;
    n: number;
  },
): Promise<Run> {
  const { grads, start, lr, weightDecay, n } = options;
  const params = tensorFrom(rt, [p0.length], p0, "params");
  const g = tensor(rt, [p0.length], { label: "grads" });
  const state = await createStepState(rt);
  state.set(rt, { step: start, batch: 0 });
  const adamw = await createAdamW(rt, {
    params,
    grads: g,
    state: state.tensor,
    n,
    lr,
    weightDecay,
  });
  const steps = [];
  for (const grad of grads) {
    upload(rt, g, grad);
    submit(rt, [adamw.op, state.advanceTrain]);
    const p = await readback(rt, params);
    steps.push({
      p: p.slice(0, n),
      m: await readback(rt, adamw.m),
      v: await readback(rt, adamw.v),
    });
  }
  const counters = await state.read(rt);
  if (counters.step !== start + grads.length) throw new Error(`step counter ${counters.step}`);
  return { steps, rest: (await readback(rt, params)).slice(n) };
}

async function checkAgainstReference(
  rt: Runtime,
  options: {
    n: number;
    extra: number;
    steps: number;
    start: number;
    lr: number;
    weightDecay: number;
    seed: number;
  },
): Promise<void> {
  const { n, extra, steps, start, lr, weightDecay, seed } = options;
  const rng = random(seed);
  const p0 = Float32Array.from(randomArray(rng, n + extra));
  const grads = Array.from({ length: steps }, () => Float32Array.from(randomArray(rng, n + extra)));
  const run = await runAdamW(rt, p0, { grads, start, lr, weightDecay, n });
  let state = {
    p: Float64Array.from(p0.slice(0, n)),
    m: new Float64Array(n),
    v: new Float64Array(n),
  };
  for (let s = 0; s < steps; s++) {
    const t = start + s + 1;
    state = adamwReference({ ...state, g: grads[s].subarray(0, n) }, {
      t,
      lr,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay,
    });
    assertClose(run.steps[s].m, state.m, M_TOLERANCE, `m at t = ${t}`);
    assertClose(run.steps[s].v, state.v, V_TOLERANCE, `v at t = ${t}`);
    assertClose(run.steps[s].p, state.p, P_TOLERANCE, `p at t = ${t}`);
  }
  assertClose(run.rest, p0.slice(n), { atol: 0, rtol: 0 }, "the floats past n are untouched");
}

Deno.test(
  "adamw matches the reference over 5 steps as the step state advances",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    // The seed model's 8,922 parameters padded to 9,344: 37 workgroups, the last one partial.
    await checkAgainstReference(rt, {
      n: 9344,
      extra: 96,
      steps: 5,
      start: 0,
      lr: 1e-3,
      weightDecay: 1e-4,
      seed: 1,
    });
  },
);

Deno.test(
  "adamw with a large weight decay shrinks the parameters as the reference",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    // lr * wd = 0.1: the decay dominates the update.
    await checkAgainstReference(rt, {
      n: 68,
      extra: 4,
      steps: 3,
      start: 0,
      lr: 1e-2,
      weightDecay: 10,
      seed: 2,
    });
  },
);

Deno.test("adamw reads t from the step state after a resume (t = 100, 1000)", gpuTest, async () => {
  const rt = await testRuntime();
  // t = 100 and 1000 take the other branch of 1 - beta^t than t <= 5 (t ln beta < -0.5).
  for (const start of [99, 999]) {
    await checkAgainstReference(rt, {
      n: 64,
      extra: 0,
      steps: 2,
      start,
      lr: 1e-3,
      weightDecay: 1e-4,
      seed: 3 + start,
    });
  }
});

Deno.test(
  "adamw's first step on one element matches the value computed by hand",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    // p = 0.5, g = 0.2, lr = 1e-3, wd = 1e-2, t = 1:
    //   p * (1 - 1e-5) = 0.499995; m = 0.1 * 0.2 = 0.02; v = 0.001 * 0.04 = 4e-5
    //   denom = sqrt(4e-5) / sqrt(0.001) + 1e-8 = 0.2 + 1e-8; lr / (1 - 0.9) = 0.01
    //   p = 0.499995 - 0.01 * 0.02 / (0.2 + 1e-8) = 0.49899500005
    const p0 = new Float32Array([0.5, 0, 0, 0]);
    const grad = new Float32Array([0.2, 0, 0, 0]);
    const run = await runAdamW(rt, p0, {
      grads: [grad],
      start: 0,
      lr: 1e-3,
      weightDecay: 1e-2,
      n: 4,
    });
    const { p, m, v } = run.steps[0];
    // One f32 rounding of each (ulp(0.5) = 6e-8).
    assertClose([p[0]], [0.49899500005], { atol: 6e-8, rtol: 0 }, "p by hand");
    assertClose([m[0]], [0.02], { atol: 0, rtol: 1.2e-7 }, "m by hand");
    assertClose([v[0]], [4e-5], { atol: 0, rtol: 2.4e-7 }, "v by hand");
    // Zero gradient and parameter stay zero (the padding of the layout).
    assertClose([p[1], m[1], v[1]], [0, 0, 0], { atol: 0, rtol: 0 }, "padding");
  },
);

Deno.test(
  "adamw's bias corrections keep f32 precision at small t (1 - 0.999^t)",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    // With p = 0 and no decay, the first step is exactly -lr * g / (|g| + eps): any error in
    // 1 - beta2^t (1.0 - pow(0.999, 1) in f32 is 1.3e-5 off) shows in p.
    const n = 64;
    const rng = random(4);
    const grads = [1, 2, 3].map(() => Float32Array.from(randomArray(rng, n, 0.1, 1)));
    const run = await runAdamW(rt, new Float32Array(n), {
      grads,
      start: 0,
      lr: 1e-3,
      weightDecay: 0,
      n,
    });
    const first = grads[0].map((g) => -1e-3 * g / (Math.abs(g) + 1e-8));
    assertClose(run.steps[0].p, first, { atol: 0, rtol: 1e-6 }, "p after one step");
    let state = { p: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) };
    for (let s = 0; s < 3; s++) {
      state = adamwReference({ ...state, g: grads[s] }, {
        t: s + 1,
        lr: 1e-3,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weightDecay: 0,
      });
      // |p| ~ lr: relative error only (a few ulp of p and of the update).
      assertClose(run.steps[s].p, state.p, { atol: 0, rtol: 1e-6 }, `p at t = ${s + 1}`);
    }
  },
);

Deno.test(
  "step state: set writes only the counters given, advance_eval keeps the step",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const state = await createStepState(rt);
    state.set(rt, { step: 41, batch: 9 });
    state.set(rt, { batch: 0 });
    submit(rt, [state.advanceTrain, state.advanceEval, state.advanceEval]);
    const counters = await state.read(rt);
    if (counters.step !== 42 || counters.batch !== 3) {
      throw new Error(`step state ${JSON.stringify(counters)}, expected step 42, batch 3`);
    }
  },
);
