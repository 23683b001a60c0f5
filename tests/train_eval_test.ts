import { assertClose } from "./util/assert_close.ts";
import { syntheticSplit } from "./util/synthetic.ts";
import { gpuTest, testRuntime } from "./util/gpu.ts";
import { lenet } from "../lib/models.ts";
import { createTrainer, defaultEvalBatch, passFigures, type Progress } from "../lib/train.ts";
import { random } from "../lib/random.ts";
import { readback, upload } from "../lib/runtime.ts";

// Each image's loss is the same f32 at any batch (in eval mode an image is computed on its
// own), and the seed's figures are formed from those rows by one function.
const EXACT = { atol: 0, rtol: 0 };

Deno.test(
  "evaluation at eval batches 40 and 88 gives the per-image rows, batches, loss and accuracy of batch 8 on 91 test images",
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
      const rows = await readback(rt, trainer.metrics.test);
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
      assertClose(got.rows, expected.rows, EXACT, `${label}: rows (loss, correct) per image`);
      for (const key of ["loss", "correct", "images"] as const) {
        const [a, b] = [got.result.batches[key], expected.result.batches[key]];
        assertClose(a, b, EXACT, `${label}: batches.${key}`);
      }
      assertClose([got.result.loss], [expected.result.loss], EXACT, `${label}: loss`);
      assertClose([got.result.accuracy], [expected.result.accuracy], EXACT, `${label}: accuracy`);
      assertClose([got.result.images], [91], EXACT, `${label}: images`);
      assertClose(
        [got.last.done, got.last.total, got.last.loss, got.last.accuracy],
        [12, 12, expected.last.loss, expected.last.accuracy],
        EXACT,
        `${label}: last progress`,
      );
    }
  },
);

Deno.test("passFigures forms the seed's batch means and pass figures from per-image rows", () => {
  // 91 images at batch 8: 11 batches of 8 and a last one of 3, as a DataLoader cuts them.
  const rng = random(5);
  const loss = Float32Array.from({ length: 91 }, () => rng.uniform(0, 3));
  const correct = Uint8Array.from({ length: 91 }, () => rng.int(2));
  const got = passFigures({ loss, correct }, 8);
  const means: number[] = [], hits: number[] = [], sizes: number[] = [];
  for (let from = 0; from < 91; from += 8) {
    const to = Math.min(91, from + 8);
    means.push(loss.slice(from, to).reduce((a, l) => a + l, 0) / (to - from));
    hits.push(correct.slice(from, to).reduce((a, c) => a + c, 0));
    sizes.push(to - from);
  }
  // Batch means are stored as f32 (the seed's loss.item()): half an f32 ulp.
  assertClose(got.batches.loss, means, { atol: 0, rtol: 6e-8 }, "batch means");
  assertClose(got.batches.correct, hits, EXACT, "correct per batch");
  assertClose(got.batches.images, sizes, EXACT, "images per batch");
  const seedLoss = Array.from(got.batches.loss).reduce((a, l) => a + l, 0) / 12;
  assertClose([got.loss], [seedLoss], { atol: 0, rtol: 1e-15 }, "running_loss / len(loader)");
  const accuracy = (100 * hits.reduce((a, c) => a + c, 0)) / 91;
  assertClose([got.accuracy, got.images], [accuracy, 91], { atol: 0, rtol: 1e-15 }, "accuracy");
  const empty = passFigures({ loss: new Float32Array(0), correct: new Uint8Array(0) }, 8);
  assertClose([empty.loss, empty.accuracy, empty.batches.loss.length], [0, 0, 0], EXACT, "empty");
});

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
