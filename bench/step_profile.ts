/**
 * The time of each kernel of one training step of the seed's model at batch 32 and its share
 * of the step: each op is timed alone over repeated dispatches (timed repeats), then the whole
 * step. Run: deno run -A bench/step_profile.ts [--batch 32] [--repeat 20] [--trials 5]
 * @module
 */

import { parseArgs } from "node:util";
import { idle, type Op, opName, submit } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { lenet } from "../lib/models.ts";
import { createTrainer } from "../lib/train.ts";
import { loadDataset } from "../lib/io/mnist.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    batch: { type: "string", default: "32" },
    repeat: { type: "string", default: "20" },
    trials: { type: "string", default: "5" },
  },
});
const batch = Number(values.batch), repeat = Number(values.repeat);
const trials = Number(values.trials);
const rt = await createRuntime("auto");
const data = await loadDataset("data", "mnist");
const trainer = await createTrainer(rt, lenet(), data, {
  batchSize: batch,
  lr: 1e-3,
  weightDecay: 1e-4,
  seed: 0,
  mean: 0.1307,
  std: 0.3081,
});

async function timed(ops: Op[], times: number): Promise<number> {
  const t0 = performance.now();
  submit(rt, ops, times);
  await idle(rt);
  return performance.now() - t0;
}

// ms per call: the median over `trials` of the difference between 2 * repeat and repeat calls,
// so that the fixed cost of a submit and its wait drops out. The median, because on llvmpipe
// every dispatch wakes the worker threads, and how soon the OS runs them varies from run to run.
async function time(ops: Op[]): Promise<number> {
  await timed(ops, 3);
  const samples: number[] = [];
  for (let t = 0; t < trials; t++) {
    samples.push((await timed(ops, 2 * repeat) - await timed(ops, repeat)) / repeat);
  }
  return samples.sort((a, b) => a - b)[Math.floor(trials / 2)];
}

const ops = trainer.stepOps.train;
const rows: [string, number][] = [];
for (const op of ops) rows.push([opName(op), await time([op])]);
const step = await time(ops);
const sum = rows.reduce((a, [, t]) => a + t, 0);
console.log(`${rt.description}; batch ${batch}; ${ops.length} dispatches per step`);
console.log("| kernel | ms | share of the sum |");
console.log("|---|---:|---:|");
for (const [name, t] of rows) {
  console.log(`| ${name} | ${t.toFixed(3)} | ${(100 * t / sum).toFixed(1)}% |`);
}
console.log(`| sum of the parts | ${sum.toFixed(3)} | |`);
console.log(`| whole step | ${step.toFixed(3)} | ${(batch / step * 1000).toFixed(0)} images/s |`);
