/**
 * The time of each kernel of one training step of the seed's model and its share of the step:
 * each op is timed alone over repeated dispatches (timed repeats), then the whole step, with
 * the step's dispatches and copies counted. Run `deno task bench:profile --help` for options.
 * @module
 */

import { parseArgs } from "node:util";
import { idle, type Op, opName, submit } from "../lib/runtime.ts";
import { createRuntime, type KernelChoice } from "../lib/device.ts";
import { lenet } from "../lib/models.ts";
import { createTrainer } from "../lib/train.ts";
import { loadDataset } from "../lib/io/mnist.ts";

const HELP = `Usage: deno task bench:profile [options]

Times each op of one training step of the seed's model alone, then the whole step, on
data/mnist (run deno task download first).

Options:
  --batch N          images per step (default 32)
  --repeat N         calls per timed submit (default 20)
  --trials N         timed submits per figure; the median is reported (default 5)
  --kernels K        auto, plain or cpu: the kernel tier (default auto: cpu on llvmpipe)
  -h, --help         this help
Environment: DENO_WEBGPU_BACKEND=vulkan|gl picks Deno's WebGPU backend.`;

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name}: expected a positive integer, got "${value}"\n\n${HELP}`);
    Deno.exit(2);
  }
  return n;
}

let values;
try {
  values = parseArgs({
    args: Deno.args,
    options: {
      batch: { type: "string", default: "32" },
      repeat: { type: "string", default: "20" },
      trials: { type: "string", default: "5" },
      kernels: { type: "string", default: "auto" },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
} catch (e) {
  console.error(`${(e as Error).message}\n\n${HELP}`);
  Deno.exit(2);
}
if (values.help) {
  console.log(HELP);
  Deno.exit(0);
}
if (!["auto", "plain", "cpu"].includes(values.kernels)) {
  console.error(`--kernels: expected auto, plain or cpu, got "${values.kernels}"\n\n${HELP}`);
  Deno.exit(2);
}
const batch = positive("batch", values.batch), repeat = positive("repeat", values.repeat);
const trials = positive("trials", values.trials);
const rt = await createRuntime("auto", { kernels: values.kernels as KernelChoice });
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
const dispatches = ops.filter((o) => "kernel" in o).length;
const rows: [string, number][] = [];
for (const op of ops) rows.push([opName(op), await time([op])]);
const step = await time(ops);
const sum = rows.reduce((a, [, t]) => a + t, 0);
console.log(
  `${rt.description}; kernels ${rt.tier.name}; batch ${batch}; ${dispatches} dispatches and ` +
    `${ops.length - dispatches} copies per step`,
);
console.log("| kernel | ms | share of the sum |");
console.log("|---|---:|---:|");
for (const [name, t] of rows) {
  console.log(`| ${name} | ${t.toFixed(3)} | ${(100 * t / sum).toFixed(1)}% |`);
}
console.log(`| sum of the parts | ${sum.toFixed(3)} | |`);
console.log(`| whole step | ${step.toFixed(3)} | ${(batch / step * 1000).toFixed(0)} images/s |`);
