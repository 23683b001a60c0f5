import { assertClose } from "./util/assert_close.ts";
import { gpuTest, testRuntime } from "./util/gpu.ts";
import { lenet } from "../lib/models.ts";
import { createTrainer, defaultEvalBatch, type Progress, type Split } from "../lib/train.ts";
import { random } from "../lib/random.ts";
import { readback, upload } from "../lib/runtime.ts";

/** Digit-like images: mostly black, with bright strokes, like MNIST. */
function syntheticSplit(count: number, seed: number): Split {
  const rng = random(seed);
  const images = new Uint8Array(count * 784);
  for (let i = 0; i < images.length; i++) images[i] = rng.next() < 0.2 ? rng.int(256) : 0;
  const labels = Uint8Array.from({ length: count }, () => rng.int(10));
  return { images, labels, count };
}

// Each image's loss is the same f32 at any batch; a row's mean and the pass's mean of rows
// are sums in the same order. Allow a few f32 roundings all the same.
const ROUNDING = { atol: 0, rtol: 1e-6 };
const EXACT = { atol: 0, rtol: 0 };

Deno.test(
  "evaluation at eval batches 40 and 88 gives the per-batch rows, loss and accuracy of batch 8 on 91 test images",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const model = lenet();
    const config = {
      batchSize: 8,
      lr: 1e-2,
      weightDecay: 1e-4,
      seed: 3,
      mean: 0.1307,
      std: 0.3081,
    };
    // 91 = 11 x 8 + 3 (the seed's batches); = 2 x 40 + 11 (the last step: a batch of 8 and one
    // of 3); = 88 + 3 (the default eval batch here, see below).
    const data = { train: syntheticSplit(64, 21), test: syntheticSplit(91, 22) };
    const seed = await createTrainer(rt, model, data, { ...config, evalBatchSize: 8 });
    // Trained weights and running statistics, not the initial ones (BN: mean 0, variance 1).
    await seed.trainEpoch(1);
    const params = Float32Array.from(await readback(rt, seed.params));

    const run = async (trainer: typeof seed) => {
      let last: Progress | undefined;
      const result = await trainer.evaluate({ onProgress: (p) => last = p });
      const rows = (await readback(rt, trainer.metrics.test)).slice(0, 2 * 12);
      return { result, rows, last: last! };
    };
    const expected = await run(seed);
    if (expected.result.accuracy === 0 || expected.result.accuracy === 100) {
      throw new Error(
        `accuracy ${expected.result.accuracy}%: the test should hold hits and misses`,
      );
    }
    for (const evalBatchSize of [40, undefined]) {
      const trainer = await createTrainer(rt, model, data, { ...config, evalBatchSize });
      upload(rt, trainer.params, params);
      const got = await run(trainer);
      const label = `eval batch ${evalBatchSize ?? "default"}`;
      assertClose(got.rows, expected.rows, ROUNDING, `${label}: rows (loss, correct) per batch`);
      const correct = (rows: Float32Array) => rows.filter((_, i) => i % 2 === 1);
      assertClose(correct(got.rows), correct(expected.rows), EXACT, `${label}: correct per batch`);
      assertClose([got.result.loss], [expected.result.loss], ROUNDING, `${label}: loss`);
      assertClose([got.result.accuracy], [expected.result.accuracy], EXACT, `${label}: accuracy`);
      assertClose([got.result.images], [91], EXACT, `${label}: images`);
      assertClose(
        [got.last.done, got.last.total, got.last.loss, got.last.accuracy],
        [12, 12, expected.last.loss, expected.last.accuracy],
        ROUNDING,
        `${label}: last progress`,
      );
    }
  },
);

Deno.test(
  "the default eval batch ends on the same partial batch as the seed's when it can",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const model = lenet();
    const cases = [
      // MNIST: 312 batches of 32 = 12 steps of 26 batches, then the last 16 images.
      { batchSize: 32, count: 10_000, expected: 832 },
      { batchSize: 8, count: 91, expected: 88 },
      // 39 batches: 4 a step does not divide them, 3 does.
      { batchSize: 256, count: 10_000, expected: 768 },
      // 313 batches, a prime: the largest step, and a partial step of its own.
      { batchSize: 32, count: 10_016, expected: 1024 },
      // Fewer images than a batch: one partial step.
      { batchSize: 8, count: 5, expected: 8 },
    ];
    for (const { batchSize, count, expected } of cases) {
      const got = defaultEvalBatch(rt, model, { batchSize, count });
      assertClose([got], [expected], EXACT, `batch ${batchSize}, ${count} images`);
    }
  },
);
