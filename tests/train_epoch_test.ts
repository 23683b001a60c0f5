import assert from "node:assert/strict";
import { assertClose } from "./util/assert_close.ts";
import { syntheticSplit } from "./util/synthetic.ts";
import { gpuTest, testRuntime } from "./util/gpu.ts";
import { lenet } from "../lib/models.ts";
import {
  createTrainer,
  epochOrder,
  type Split,
  type StepReport,
  type TrainerState,
} from "../lib/train.ts";

/** The images of `split` that `order` names, stored in that order. */
function reordered(split: Split, order: Uint32Array): Split {
  const images = new Uint8Array(order.length * 784);
  order.forEach((k, i) => images.set(split.images.subarray(k * 784, (k + 1) * 784), i * 784));
  return { images, labels: Uint8Array.from(order, (k) => split.labels[k]), count: order.length };
}

const EXACT = { atol: 0, rtol: 0 };
const config = { batchSize: 16, lr: 1e-3, weightDecay: 1e-4, seed: 4, mean: 0.1307, std: 0.3081 };
// 40 images at batch 16: steps of 16, 16 and a last one of 8.
const data = { train: syntheticSplit(40, 41), test: syntheticSplit(8, 42) };

function assertSameState(got: TrainerState, expected: TrainerState, what: string) {
  assert.equal(got.steps, expected.steps, `${what}: steps`);
  for (const key of ["params", "m", "v"] as const) {
    assertClose(got[key], expected[key], EXACT, `${what}: ${key}`);
  }
}

Deno.test(
  "trainEpoch visits the images in the given order (as a split stored in that order)",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const model = lenet();
    // The default order of epoch 2, given to epoch 7: the same epoch as the default's.
    const byDefault = await createTrainer(rt, model, data, config);
    const expected = await byDefault.trainEpoch(2);
    const given = await createTrainer(rt, model, data, config);
    const got = await given.trainEpoch(7, {}, { order: epochOrder(config.seed, 2, 40) });
    assertClose(got.batches.loss, expected.batches.loss, EXACT, "given default order: losses");
    assertSameState(await given.saveState(), await byDefault.saveState(), "given default order");

    // Another order: the same as the split stored in that order, visited 0, 1, 2, ...
    const order = Uint32Array.from({ length: 40 }, (_, i) => (i * 17 + 3) % 40);
    const steered = await createTrainer(rt, model, data, config);
    const result = await steered.trainEpoch(1, {}, { order });
    const stored = await createTrainer(
      rt,
      model,
      { ...data, train: reordered(data.train, order) },
      config,
    );
    const identity = Uint32Array.from({ length: 40 }, (_, i) => i);
    const reference = await stored.trainEpoch(1, {}, { order: identity });
    assertClose(result.batches.loss, reference.batches.loss, EXACT, "another order: losses");
    assertClose(result.batches.correct, reference.batches.correct, EXACT, "another order: correct");
    assertSameState(await steered.saveState(), await stored.saveState(), "another order");
    if (result.batches.loss.every((l, b) => l === expected.batches.loss[b])) {
      throw new Error("another order gave the default order's losses: the order is not used");
    }
  },
);

Deno.test(
  "trainEpoch rejects an order that is not a permutation of the split",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const trainer = await createTrainer(rt, lenet(), data, config);
    const before = await trainer.saveState();
    const identity = () => Uint32Array.from({ length: 40 }, (_, i) => i);
    const duplicate = identity();
    duplicate[39] = 5;
    const outside = identity();
    outside[7] = 40;
    const cases: [Uint32Array, RegExp][] = [
      [identity().subarray(1), /order holds 39 indices; the training split has 40 images/],
      [outside, /order\[7\] = 40 is not an image of the split \(0\.\.39\)/],
      [duplicate, /order\[39\] = 5 repeats: it must be a permutation/],
    ];
    for (const [order, message] of cases) {
      await assert.rejects(trainer.trainEpoch(1, {}, { order }), message);
    }
    assertSameState(await trainer.saveState(), before, "after the rejected orders");
  },
);

Deno.test(
  "onStep sees every step after it ran, and a run with it trains as one without",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const model = lenet();
    const plain = await createTrainer(rt, model, data, config);
    const expected = await plain.trainEpoch(1);

    const hooked = await createTrainer(rt, model, data, config);
    const reports: StepReport[] = [];
    const states: TrainerState[] = [];
    const result = await hooked.trainEpoch(1, {}, {
      onStep: async (step) => {
        reports.push(step);
        // The next step waits for the hook: the state read here is this step's.
        states.push(await hooked.saveState());
      },
    });
    assert.deepEqual(
      reports.map(({ batch, images, steps }) => [batch, images, steps]),
      [[0, 16, 1], [1, 16, 2], [2, 8, 3]],
    );
    assertClose(reports.map((r) => r.loss), expected.batches.loss, EXACT, "step losses");
    assertClose(reports.map((r) => r.correct), expected.batches.correct, EXACT, "step correct");
    assertClose([result.loss, result.accuracy], [expected.loss, expected.accuracy], EXACT, "pass");
    assertSameState(states[2], await plain.saveState(), "state after the last step");
    assertSameState(await hooked.saveState(), states[2], "state after the epoch");
    assert.equal(states[0].steps, 1);
    assert.notDeepEqual(states[0].params, states[1].params, "the state after each step");

    // A run of the first step alone (the order puts those 16 images in an epoch of 16).
    const order = epochOrder(config.seed, 1, 40);
    const first = { ...data, train: reordered(data.train, order.slice(0, 16)) };
    const one = await createTrainer(rt, model, first, { ...config, batchSize: 16 });
    await one.trainEpoch(1, {}, { order: Uint32Array.from({ length: 16 }, (_, i) => i) });
    assertSameState(states[0], await one.saveState(), "state after step 1");
  },
);
