import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray, tensorFrom, testRuntime } from "./util/gpu.ts";
import { crossEntropyReference } from "./reference/cross_entropy.ts";
import { createMetrics, crossEntropy, readMetrics } from "../lib/layers/cross_entropy.ts";
import { createStepState } from "../lib/step_state.ts";
import { readback, type Runtime, submit, tensor, upload } from "../lib/runtime.ts";

// Loss: f32 exp/log per row (a few ulp) and a sum of up to 1000 row losses.
const LOSS_TOLERANCE = { atol: 1e-6, rtol: 2e-6 };
// dlogits = (p - onehot) / B: p from f32 exp (error grows with |z - max|) and a division.
const GRAD_TOLERANCE = { atol: 1e-7, rtol: 2e-6 };
const EXACT = { atol: 0, rtol: 0 };

interface GpuResult {
  /** All rows of the metrics tensor. */
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
    row?: number;
    capacity?: number;
    group?: number;
    batchSize?: number;
  },
): Promise<GpuResult> {
  const { classes, train, row = 0, capacity = 1, group, batchSize } = options;
  const batch = labels.length;
  const state = await createStepState(rt);
  state.set(rt, { step: 0, batch: row });
  const metrics = createMetrics(rt, capacity);
  // A sentinel shows whether another row than `row` was written.
  upload(rt, metrics, new Float32Array(2 * capacity).fill(-7));
  const dlogits = train ? tensor(rt, [batch, classes], { label: "dlogits" }) : null;
  const loss = await crossEntropy(rt, {
    logits: tensorFrom(rt, [batch, classes], logits, "logits"),
    labels: tensorFrom(rt, [batch], labels, "labels"),
    dlogits,
    metrics,
    state: state.tensor,
    group,
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

async function checkAgainstReference(
  rt: Runtime,
  logits: Float32Array<ArrayBuffer>,
  labels: Uint32Array<ArrayBuffer>,
  options: { classes: number; label: string },
): Promise<void> {
  const { classes, label } = options;
  const expected = crossEntropyReference(logits, labels, { classes });
  for (const train of [true, false]) {
    const got = await runCrossEntropy(rt, logits, labels, { classes, train });
    const mode = train ? "forward_backward" : "forward";
    assertClose([got.metrics[0]], [expected.loss], LOSS_TOLERANCE, `${label} ${mode} loss`);
    assertClose([got.metrics[1]], [expected.correct], EXACT, `${label} ${mode} correct`);
    if (got.dlogits) assertClose(got.dlogits, expected.dlogits, GRAD_TOLERANCE, `${label} dlogits`);
  }
}

for (const [batch, classes] of [[1, 10], [3, 10], [33, 10], [3, 7], [33, 7]]) {
  Deno.test(
    `cross_entropy matches the reference for batch ${batch}, ${classes} classes`,
    gpuTest,
    async () => {
      const rt = await testRuntime();
      const logits = uniformArray(batch * 100 + classes, batch * classes, -3, 3);
      const labels = randomLabels(batch + classes, batch, classes);
      await checkAgainstReference(rt, logits, labels, { classes, label: `[${batch},${classes}]` });
    },
  );
}

Deno.test("cross_entropy of 1000 rows loops each invocation over many rows", gpuTest, async () => {
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
  const expected = crossEntropyReference(logits, labels, { classes });
  if (expected.correct === 0 || expected.correct === batch) {
    throw new Error("the test data should hold both hits and misses");
  }
  const got = await runCrossEntropy(rt, logits, labels, { classes, train: true });
  assertClose([got.metrics[1]], [expected.correct], EXACT, "correct with ties");
  const one = await runCrossEntropy(rt, logits.slice(classes, 2 * classes), labels.slice(1, 2), {
    classes,
    train: false,
  });
  assertClose([one.metrics[1]], [0], EXACT, "a tie with the label last is not correct");
});

Deno.test(
  "cross_entropy writes only the metrics row of the step state's batch",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const logits = uniformArray(17, 3 * 10, -3, 3);
    const labels = randomLabels(18, 3, 10);
    const expected = crossEntropyReference(logits, labels, { classes: 10 });
    const got = await runCrossEntropy(rt, logits, labels, {
      classes: 10,
      train: true,
      row: 3,
      capacity: 5,
    });
    const want = [-7, -7, -7, -7, -7, -7, expected.loss, expected.correct, -7, -7];
    assertClose(got.metrics, want, LOSS_TOLERANCE, "metrics rows");
    const rows = await readMetrics(rt, createMetrics(rt, 5), { from: 1, to: 4 });
    if (rows.loss.length !== 3 || rows.correct.length !== 3) throw new Error("readMetrics rows");
  },
);

for (const [batch, group, batchSize] of [[75, 8, 80], [300, 100, 300], [5, 4, 8]]) {
  Deno.test(
    `cross_entropy of ${batch} rows in groups of ${group} writes each group's row as a step of that group alone`,
    gpuTest,
    async () => {
      const rt = await testRuntime();
      const classes = 10, step = 2;
      const logits = uniformArray(40 + batch, batch * classes, -4, 4);
      const labels = randomLabels(41 + batch, batch, classes);
      const groups = Math.ceil(batch / group), first = (step * batchSize) / group;
      const capacity = first + batchSize / group + 1;
      for (const train of [false, true]) {
        const mode = train ? "forward_backward" : "forward";
        const got = await runCrossEntropy(rt, logits, labels, {
          classes,
          train,
          row: step,
          capacity,
          group,
          batchSize,
        });
        for (let g = 0; g < groups; g++) {
          const from = g * group, to = Math.min(batch, from + group);
          const z = logits.slice(from * classes, to * classes), y = labels.slice(from, to);
          const expected = crossEntropyReference(z, y, { classes });
          const row = got.metrics.subarray(2 * (first + g), 2 * (first + g) + 2);
          assertClose([row[0]], [expected.loss], LOSS_TOLERANCE, `${mode} loss of group ${g}`);
          assertClose([row[1]], [expected.correct], EXACT, `${mode} correct of group ${g}`);
          // The same bits as one step over the group: the seed's batches, at any eval batch.
          const alone = await runCrossEntropy(rt, z, y, { classes, train: false });
          assertClose(row, alone.metrics, EXACT, `${mode} group ${g} against a step of it alone`);
        }
        const others = Array.from(got.metrics).filter((_, i) =>
          i < 2 * first || i >= 2 * (first + groups)
        );
        assertClose(others, others.map(() => -7), EXACT, `${mode} rows outside the step`);
        if (got.dlogits) {
          // The gradient stays that of the mean over the whole batch, whatever the groups.
          const whole = crossEntropyReference(logits, labels, { classes });
          assertClose(got.dlogits, whole.dlogits, GRAD_TOLERANCE, "dlogits over the batch");
        }
      }
    },
  );
}

Deno.test("cross_entropy rejects groups that do not divide the step", gpuTest, async () => {
  const rt = await testRuntime();
  const state = await createStepState(rt);
  const options = {
    logits: tensor(rt, [6, 10]),
    labels: tensor(rt, [6], { dtype: "u32" }),
    dlogits: null,
    metrics: createMetrics(rt, 4),
    state: state.tensor,
  };
  for (const bad of [{ group: 4 }, { group: 3, batchSize: 4 }, { group: 0 }]) {
    const error = await crossEntropy(rt, { ...options, ...bad }).then(() => null, (e) => e);
    if (!(error instanceof Error)) throw new Error(`${JSON.stringify(bad)} was accepted`);
  }
});

Deno.test("cross_entropy keeps one row per step across advancing steps", gpuTest, async () => {
  const rt = await testRuntime();
  const batch = 4, classes = 10, steps = 3;
  const state = await createStepState(rt);
  const metrics = createMetrics(rt, steps);
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
    const r = crossEntropyReference(z, y, { classes });
    expected.push(r.loss, r.correct);
  }
  assertClose(await readback(rt, metrics), expected, LOSS_TOLERANCE, "metrics of 3 steps");
  const rows = await readMetrics(rt, metrics, { from: 1, to: 3 });
  assertClose(rows.loss, [expected[2], expected[4]], LOSS_TOLERANCE, "readMetrics loss");
  assertClose(rows.correct, [expected[3], expected[5]], EXACT, "readMetrics correct");
});

Deno.test("cross_entropy gives a NaN loss for a label outside the classes", gpuTest, async () => {
  const rt = await testRuntime();
  const logits = uniformArray(19, 3 * 10, -3, 3);
  const labels = new Uint32Array([1, 10, 2]);
  const got = await runCrossEntropy(rt, logits, labels, { classes: 10, train: false });
  if (!Number.isNaN(got.metrics[0])) throw new Error(`loss ${got.metrics[0]}, expected NaN`);
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
    const numeric = (plus.metrics[0] - minus.metrics[0]) / (2 * eps);
    const analytic = dlogits!.reduce((s, g, i) => s + g * direction[i], 0);
    // f32 losses near 2.5 carry ~1e-6 of rounding, divided by 2 eps = 0.02: ~5e-5.
    assertClose([numeric], [analytic], { atol: 1e-4, rtol: 0 }, "directional derivative");
  },
);
