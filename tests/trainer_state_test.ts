import assert from "node:assert/strict";
import { syntheticSplit } from "./util/synthetic.ts";
import { gpuTest, testRuntime } from "./util/gpu.ts";
import { lenet } from "../lib/models.ts";
import { createTrainer, type TrainerState } from "../lib/train.ts";

const config = { batchSize: 16, lr: 1e-3, weightDecay: 1e-4, seed: 9, mean: 0.1307, std: 0.3081 };
// 16 images at batch 16: one epoch is one step.
const data = { train: syntheticSplit(16, 31), test: syntheticSplit(8, 32) };

/** Asserts two states are the same bits (NaN-safe, -0 distinct from 0). */
function assertSameState(got: TrainerState, expected: TrainerState, what: string) {
  assert.equal(got.steps, expected.steps, `${what}: steps`);
  for (const name of ["params", "m", "v"] as const) {
    const a = new Uint32Array(got[name].buffer, got[name].byteOffset, got[name].length);
    const b = new Uint32Array(
      expected[name].buffer,
      expected[name].byteOffset,
      expected[name].length,
    );
    assert.equal(a.length, b.length, `${what}: ${name} length`);
    const first = a.findIndex((x, i) => x !== b[i]);
    assert.equal(
      first,
      -1,
      `${what}: ${name}[${first}] = ${got[name][first]}, expected ${expected[name][first]}`,
    );
  }
}

Deno.test(
  "a step from a loaded state repeats the step from the saved one bit for bit",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const trainer = await createTrainer(rt, lenet(), data, config);
    const start = await trainer.saveState();
    assert.equal(start.steps, 0);
    await trainer.trainEpoch(1);
    const once = await trainer.saveState();
    assert.equal(once.steps, 1);
    assert.notDeepEqual(once.params, start.params, "the step should change the parameters");
    trainer.loadState(start);
    assertSameState(await trainer.saveState(), start, "loaded state");
    await trainer.trainEpoch(1);
    assertSameState(await trainer.saveState(), once, "the step again");
  },
);

Deno.test(
  "a second trainer given the state after epoch 1 trains epoch 2 as the first does (resume)",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const first = await createTrainer(rt, lenet(), data, config);
    await first.trainEpoch(1);
    const after1 = await first.saveState();
    await first.trainEpoch(2);
    const after2 = await first.saveState();
    // A fresh trainer starts from the initial weights; the loaded state replaces them.
    const resumed = await createTrainer(rt, lenet(), data, config);
    resumed.loadState(after1);
    await resumed.trainEpoch(2);
    assertSameState(await resumed.saveState(), after2, "resumed epoch 2");
  },
);

Deno.test(
  "loadState rejects a state of another layout and leaves the trainer as it was",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const trainer = await createTrainer(rt, lenet(), data, config);
    const good = await trainer.saveState();
    const cases: [Partial<TrainerState>, RegExp][] = [
      [
        { params: good.params.subarray(1) },
        /params holds \d+ floats; lenet's layout needs \d+ floats/,
      ],
      [{ m: new Float32Array(good.m.length + 4) }, /m holds \d+ floats; .* needs \d+ floats/],
      [{ v: good.params }, /v holds \d+ floats/],
      [{ steps: -1 }, /steps = -1 is not a step count/],
      [{ steps: 1.5 }, /steps = 1.5/],
    ];
    for (const [change, message] of cases) {
      const bad = { ...good, m: new Float32Array(good.m).fill(1), ...change };
      assert.throws(() => trainer.loadState(bad), message);
    }
    assertSameState(await trainer.saveState(), good, "after the rejected loads");
  },
);
