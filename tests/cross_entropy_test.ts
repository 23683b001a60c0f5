import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray, tensorFrom, testRuntime } from "./util/gpu.ts";
import { crossEntropyReference } from "./reference/cross_entropy.ts";
import { createMetrics, crossEntropy, readMetrics } from "../lib/layers/cross_entropy.ts";
import { createStepState } from "../lib/step_state.ts";
import { readback, type Runtime, submit, tensor, upload } from "../lib/runtime.ts";

// Loss of one image: f32 exp/log and a sum of C exponentials (a few ulp).
const LOSS_TOLERANCE = { atol: 1e-6, rtol: 2e-6 };
// dlogits = (p - onehot) / B: p from f32 exp (error grows with |z - max|) and a division.
const GRAD_TOLERANCE = { atol: 1e-7, rtol: 2e-6 };
const EXACT = { atol: 0, rtol: 0 };

interface GpuResult {
  /** All rows of the metrics tensor, (loss, correct) per image. */
  metrics: Float32Array;
  dlogits: Float32Array | null;
}

async function runCrossEntropy(
  rt: Runtime,
  logits: Float32Array<ArrayBuffer>,
  labels: Uint32Array<ArrayBuffer>,
  options: {
    classes: number;
    train: boolean;
    /** The step state's batch: which step of the pass this is. */
    step?: number;
    /** Images of a full step of the pass (default: this batch). */
    batchSize?: number;
    /** Rows of the metrics tensor (default: this batch). */
    capacity?: number;
  },
): Promise<GpuResult> {
  const { classes, train, step = 0, batchSize } = options;
  const batch = labels.length;
  const capacity = options.capacity ?? batch;
  const state = await createStepState(rt);
  state.set(rt, { step: 0, batch: step });
  const metrics = createMetrics(rt, capacity);
  // A sentinel shows whether rows other than the step's were written.
  upload(rt, metrics, new Float32Array(2 * capacity).fill(-7));
  const dlogits = train ? tensor(rt, [batch, classes], { label: "dlogits" }) : null;
  const loss = await crossEntropy(rt, {
    logits: tensorFrom(rt, [batch, classes], logits, "logits"),
    labels: tensorFrom(rt, [batch], labels, "labels"),
    dlogits,
    metrics,
    state: state.tensor,
    batchSize,
  });
  submit(rt, [loss]);
  return {
    metrics: await readback(rt, metrics),
    dlogits: dlogits ? await readback(rt, dlogits) : null,
  };
}

// randomArray's result, typed for upload (an ArrayBuffer, not a SharedArrayBuffer).
function uniformArray(
  seed: number,
  n: number,
  low: number,
  high: number,
): Float32Array<ArrayBuffer> {
  return Float32Array.from(randomArray(random(seed), n, low, high));
}

function randomLabels(seed: number, batch: number, classes: number): Uint32Array<ArrayBuffer> {
  const rng = random(seed);
  return new Uint32Array(batch).map(() => rng.int(classes));
}

/** The float64 reference's rows: (loss, correct) of each image alone, interleaved. */
function referenceRows(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
): number[] {
  return Array.from(labels, (_, n) => {
    const z = Array.from({ length: classes }, (_, c) => logits[n * classes + c]);
    const { loss, correct } = crossEntropyReference(z, [labels[n]], { classes });
    return [loss, correct];
  }).flat();
}

const losses = (rows: ArrayLike<number>) => Array.from(rows).filter((_, i) => i % 2 === 0);
const flags = (rows: ArrayLike<number>) => Array.from(rows).filter((_, i) => i % 2 === 1);

async function checkAgainstReference(
  rt: Runtime,
  logits: Float32Array<ArrayBuffer>,
  labels: Uint32Array<ArrayBuffer>,
  options: { classes: number; label: string },
): Promise<void> {
  const { classes, label } = options;
  const rows = referenceRows(logits, labels, classes);
  const { dlogits } = crossEntropyReference(logits, labels, { classes });
  for (const train of [true, false]) {
    const got = await runCrossEntropy(rt, logits, labels, { classes, train });
    const mode = train ? "forward_backward" : "forward";
    assertClose(losses(got.metrics), losses(rows), LOSS_TOLERANCE, `${label} ${mode} losses`);
    assertClose(flags(got.metrics), flags(rows), EXACT, `${label} ${mode} correct flags`);
    if (got.dlogits) assertClose(got.dlogits, dlogits, GRAD_TOLERANCE, `${label} dlogits`);
  }
}

// Batch 1; not a multiple of the workgroup of 64 (3, 33, 65); several workgroups (65, 130).
for (const [batch, classes] of [[1, 10], [3, 10], [33, 10], [3, 7], [65, 7], [130, 10]]) {
  Deno.test(
    `cross_entropy matches the reference per image for batch ${batch}, ${classes} classes`,
    gpuTest,
    async () => {
      const rt = await testRuntime();
      const logits = uniformArray(batch * 100 + classes, batch * classes, -3, 3);
      const labels = randomLabels(batch + classes, batch, classes);
      await checkAgainstReference(rt, logits, labels, { classes, label: `[${batch},${classes}]` });
    },
  );
}

Deno.test("cross_entropy of 1000 rows spans 16 workgroups", gpuTest, async () => {
  const rt = await testRuntime();
  const logits = uniformArray(11, 1000 * 10, -5, 5);
  const labels = randomLabels(12, 1000, 10);
  await checkAgainstReference(rt, logits, labels, { classes: 10, label: "[1000,10]" });
});

Deno.test("cross_entropy of logits near 1e4 does not overflow", gpuTest, async () => {
  const rt = await testRuntime();
  const logits = uniformArray(13, 33 * 10, -1e4, 1e4);
  // Rows whose logits all lie near 1e4: exp(z) alone would overflow f32.
  for (let i = 0; i < 10; i++) logits[i] = 1e4 + i / 4;
  const labels = randomLabels(14, 33, 10);
  const got = await runCrossEntropy(rt, logits, labels, { classes: 10, train: true });
  if (!got.metrics.every(Number.isFinite)) throw new Error(`metrics [${got.metrics}] not finite`);
  await checkAgainstReference(rt, logits, labels, { classes: 10, label: "1e4" });
});

Deno.test("cross_entropy counts ties as torch.argmax does (first max)", gpuTest, async () => {
  const rt = await testRuntime();
  const classes = 7, batch = 33;
  // Small integers: most rows hold ties for the max.
  const rng = random(15);
  const logits = new Float32Array(batch * classes).map(() => rng.int(3));
  const labels = randomLabels(16, batch, classes);
  // Row 0: all equal, label 0 (correct); row 1: all equal, label 6 (wrong: the first max wins).
  logits.fill(1, 0, 2 * classes);
  labels[0] = 0;
  labels[1] = 6;
  const expected = flags(referenceRows(logits, labels, classes));
  if (!expected.includes(0) || !expected.includes(1)) {
    throw new Error("the test data should hold both hits and misses");
  }
  const got = await runCrossEntropy(rt, logits, labels, { classes, train: true });
  assertClose(flags(got.metrics), expected, EXACT, "correct flags with ties");
  assertClose(flags(got.metrics).slice(0, 2), [1, 0], EXACT, "a tie with the label last");
});

Deno.test(
  "cross_entropy writes only its step's rows, at batch * batchSize, and none past the end",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const classes = 10;
    // The last, partial step of a pass: 3 images at step 3 of steps of 4: rows 12, 13, 14.
    const logits = uniformArray(17, 3 * classes, -3, 3);
    const labels = randomLabels(18, 3, classes);
    const rows = referenceRows(logits, labels, classes);
    for (const train of [false, true]) {
      const mode = train ? "forward_backward" : "forward";
      const options = { classes, train, step: 3, batchSize: 4 };
      const got = await runCrossEntropy(rt, logits, labels, { ...options, capacity: 17 });
      const want = [...new Array(24).fill(-7), ...rows, ...new Array(4).fill(-7)];
      assertClose(got.metrics, want, LOSS_TOLERANCE, `${mode}: metrics rows`);
      // A metrics tensor of 13 rows: only row 12 fits; the other two are dropped.
      const short = await runCrossEntropy(rt, logits, labels, { ...options, capacity: 13 });
      const cut = [...new Array(24).fill(-7), ...rows.slice(0, 2)];
      assertClose(short.metrics, cut, LOSS_TOLERANCE, `${mode}: rows past the end`);
    }
  },
);

Deno.test(
  "cross_entropy rows do not depend on the step's batch (a step of 75 against steps of 8)",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const classes = 10, batch = 75, small = 8;
    const logits = uniformArray(40, batch * classes, -4, 4);
    const labels = randomLabels(41, batch, classes);
    for (const train of [false, true]) {
      const mode = train ? "forward_backward" : "forward";
      const whole = await runCrossEntropy(rt, logits, labels, { classes, train });
      for (let s = 0; s * small < batch; s++) {
        const n0 = s * small, n1 = Math.min(batch, n0 + small);
        const z = logits.slice(n0 * classes, n1 * classes), y = labels.slice(n0, n1);
        const step = await runCrossEntropy(rt, z, y, {
          classes,
          train,
          step: s,
          batchSize: small,
          capacity: batch,
        });
        const got = whole.metrics.subarray(2 * n0, 2 * n1);
        const alone = step.metrics.subarray(2 * n0, 2 * n1);
        assertClose(got, alone, EXACT, `${mode}: rows ${n0}..${n1} against a step of them`);
      }
    }
  },
);

Deno.test("cross_entropy rejects a full step smaller than its batch", gpuTest, async () => {
  const rt = await testRuntime();
  const state = await createStepState(rt);
  const options = {
    logits: tensor(rt, [6, 10]),
    labels: tensor(rt, [6], { dtype: "u32" }),
    dlogits: null,
    metrics: createMetrics(rt, 4),
    state: state.tensor,
  };
  for (const batchSize of [4, 6.5, 0]) {
    const error = await crossEntropy(rt, { ...options, batchSize }).then(() => null, (e) => e);
    if (!(error instanceof Error) || !/batchSize/.test(error.message)) {
      throw new Error(`batchSize ${batchSize} was accepted (${error})`);
    }
  }
});

Deno.test("cross_entropy keeps each step's rows across advancing steps", gpuTest, async () => {
  const rt = await testRuntime();
  const batch = 4, classes = 10, steps = 3;
  const state = await createStepState(rt);
  const metrics = createMetrics(rt, steps * batch);
  const logits = tensor(rt, [batch, classes]);
  const labels = tensor(rt, [batch], { dtype: "u32" });
  const op = await crossEntropy(rt, {
    logits,
    labels,
    dlogits: null,
    metrics,
    state: state.tensor,
  });
  const expected: number[] = [];
  for (let s = 0; s < steps; s++) {
    const z = uniformArray(20 + s, batch * classes, -3, 3);
    const y = randomLabels(30 + s, batch, classes);
    upload(rt, logits, z);
    upload(rt, labels, y);
    submit(rt, [op, state.advanceEval]);
    expected.push(...referenceRows(z, y, classes));
  }
  assertClose(await readback(rt, metrics), expected, LOSS_TOLERANCE, "metrics of 3 steps");
  const rows = await readMetrics(rt, metrics, { from: 5, to: 11 });
  assertClose(rows.loss, losses(expected).slice(5, 11), LOSS_TOLERANCE, "readMetrics loss");
  assertClose(rows.correct, flags(expected).slice(5, 11), EXACT, "readMetrics correct");
  for (const bad of [{ from: 3, to: 3 }, { from: -1, to: 2 }, { from: 0, to: 13 }]) {
    const error = await readMetrics(rt, metrics, bad).then(() => null, (e) => e);
    if (!(error instanceof Error)) throw new Error(`rows ${JSON.stringify(bad)} were read`);
  }
});

Deno.test("cross_entropy gives a NaN loss for a label outside the classes", gpuTest, async () => {
  const rt = await testRuntime();
  const logits = uniformArray(19, 3 * 10, -3, 3);
  const labels = new Uint32Array([1, 10, 2]);
  for (const train of [false, true]) {
    const got = losses((await runCrossEntropy(rt, logits, labels, { classes: 10, train })).metrics);
    if (!Number.isNaN(got[1]) || !Number.isFinite(got[0]) || !Number.isFinite(got[2])) {
      throw new Error(`losses [${got}], expected NaN for image 1 alone`);
    }
  }
});

Deno.test("cross_entropy reference gradient matches finite differences", () => {
  const classes = 7, batch = 3;
  const logits = Float64Array.from(uniformArray(21, batch * classes, -3, 3));
  const labels = randomLabels(22, batch, classes);
  const { dlogits } = crossEntropyReference(logits, labels, { classes });
  const eps = 1e-5;
  const numeric = Array.from(logits, (_, i) => {
    const plus = logits.slice(), minus = logits.slice();
    plus[i] += eps;
    minus[i] -= eps;
    const lp = crossEntropyReference(plus, labels, { classes }).loss;
    const lm = crossEntropyReference(minus, labels, { classes }).loss;
    return (lp - lm) / (2 * eps);
  });
  // float64 central differences: truncation ~eps^2, rounding ~1e-16 / eps.
  assertClose(numeric, dlogits, { atol: 1e-8, rtol: 1e-6 }, "reference dlogits");
});

Deno.test(
  "cross_entropy GPU gradient matches a directional derivative of its loss",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const classes = 10, batch = 33;
    const logits = uniformArray(23, batch * classes, -3, 3);
    const direction = uniformArray(24, batch * classes, -1, 1);
    const labels = randomLabels(25, batch, classes);
    const eps = 1e-2;
    const shifted = (sign: number) => logits.map((z, i) => z + sign * eps * direction[i]);
    const plus = await runCrossEntropy(rt, shifted(1), labels, { classes, train: false });
    const minus = await runCrossEntropy(rt, shifted(-1), labels, { classes, train: false });
    const { dlogits } = await runCrossEntropy(rt, logits, labels, { classes, train: true });
    const mean = (rows: Float32Array) => losses(rows).reduce((a, l) => a + l, 0) / batch;
    const numeric = (mean(plus.metrics) - mean(minus.metrics)) / (2 * eps);
    const analytic = dlogits!.reduce((s, g, i) => s + g * direction[i], 0);
    // f32 losses near 2.5 carry ~1e-6 of rounding, divided by 2 eps = 0.02: ~5e-5.
    assertClose([numeric], [analytic], { atol: 1e-4, rtol: 0 }, "directional derivative");
  },
);
