/**
 * The time of each kernel of one training step (the seed's model, or `--model lenet5`) and its
 * share of the step:
 * each op is timed alone over repeated dispatches (timed repeats), then the whole step, with
 * the step's dispatches and copies counted. Run `deno task bench:profile --help` for options.
 * @module
 */

import { Command, Option } from "@commander-js/extra-typings";
import { idle, type Op, opName, submit } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { MODELS } from "../lib/models.ts";
import { createTrainer } from "../lib/train.ts";
import { loadDataset } from "../lib/io/mnist.ts";
import { kernelsOption, positiveInt } from "../scripts/cli_options.ts";

const program = new Command()
  .name("deno task bench:profile")
  .description(
    "Times each op of one training step of a model alone, then the whole step, on\n" +
      "data/mnist (run deno task download first). DENO_WEBGPU_BACKEND=vulkan|gl picks Deno's\n" +
      "WebGPU backend.",
  )
  .addOption(new Option("--model <name>", "model").choices(Object.keys(MODELS)).default("lenet"))
  .option("--batch <n>", "images per step", positiveInt("--batch"), 32)
  .option("--repeat <n>", "calls per timed submit", positiveInt("--repeat"), 20)
  .option(
    "--trials <n>",
    "timed submits per figure; the median is reported",
    positiveInt("--trials"),
    5,
  )
  .addOption(kernelsOption());
program.parse(["deno", "bench:profile", ...Deno.args]);
const { model, batch, repeat, trials, kernels } = program.opts();
const rt = await createRuntime("auto", { kernels });
const data = await loadDataset("data", "mnist");
const trainer = await createTrainer(rt, MODELS[model](), data, {
  batchSize: batch,
  lr: 1e-3,
  weightDecay: 1e-4,
  seed: 0,
  ...data.normalization,
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
const dispatches = ops.filter((o) => "kernel" in o).length;
const rows: [string, number][] = [];
for (const op of ops) rows.push([opName(op), await time([op])]);
const step = await time(ops);
const sum = rows.reduce((a, [, t]) => a + t, 0);
console.log(
  `${rt.description}; ${model}; kernels ${rt.tier.name}; batch ${batch}; ${dispatches} ` +
    `dispatches and ` +
    `${ops.length - dispatches} copies per step`,
);
console.log("| kernel | ms | share of the sum |");
console.log("|---|---:|---:|");
for (const [name, t] of rows) {
  console.log(`| ${name} | ${t.toFixed(3)} | ${(100 * t / sum).toFixed(1)}% |`);
}
console.log(`| sum of the parts | ${sum.toFixed(3)} | |`);
console.log(`| whole step | ${step.toFixed(3)} | ${(batch / step * 1000).toFixed(0)} images/s |`);
