/**
 * LeNet-5's whole training step with the activations after C5 and F6 fused into them
 * (lenet5(): `features.6` is Conv2d+Tanh, `classifier.1` Linear+Tanh) beside the same model
 * with those two activations as layers of their own (the table before the fusion), in one
 * process: the two steps' op lists are timed in turn, `--pairs` times, and the report gives
 * the median of each and the median of the per-pair ratios. Needs data/mnist (deno task
 * download). Run with DENO_WEBGPU_BACKEND=gl for the README's figures.
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import { idle, type Op, submit } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { lenet5, type Model, sequential } from "../lib/models.ts";
import { createTrainer } from "../lib/train.ts";
import { loadDataset } from "../lib/io/mnist.ts";
import { tanh } from "../lib/layers/activation.ts";
import { linear } from "../lib/layers/linear.ts";
import { conv2dAsLinear } from "../lib/layers/conv2d_as_linear.ts";
import { kernelsOption, positiveInt } from "../scripts/cli_options.ts";

const program = new Command()
  .name("deno run -A bench/linear_activation_bench.ts")
  .description(
    "Times LeNet-5's training step with the tanh after C5 and F6 fused into them against " +
      "the same step with them apart, interleaved, on data/mnist (run deno task download " +
      "first). DENO_WEBGPU_BACKEND=vulkan|gl picks Deno's WebGPU backend.",
  )
  .option("--batch <n>", "images per step", positiveInt("--batch"), 32)
  .option("--repeat <n>", "steps per timed submit", positiveInt("--repeat"), 20)
  .option("--pairs <n>", "timed submits of each step, in turn", positiveInt("--pairs"), 15)
  .option("--fused-first", "build the fused model's trainer first")
  .addOption(kernelsOption());
program.parse(["deno", "bench", ...Deno.args]);
const { batch, repeat, pairs, kernels, fusedFirst } = program.opts();

/** lenet5() with the tanh after C5 and F6 as layers of their own (features.7, classifier.2). */
function lenet5Apart(): Model {
  const fused = lenet5();
  const layers: [string, ReturnType<typeof tanh>][] = [];
  for (const { name, layer } of fused.layers) {
    if (name === "features.6") {
      layers.push([name, conv2dAsLinear({ inChannels: 16, outChannels: 120, kernelSize: 5 })]);
      layers.push(["features.7", tanh()]);
    } else if (name === "classifier.1") {
      layers.push([name, linear(120, 84)]);
      layers.push(["classifier.2", tanh()]);
    } else {
      layers.push([name, layer]);
    }
  }
  return sequential("lenet5", layers, { input: fused.input, pad: fused.pad });
}

const rt = await createRuntime("auto", { kernels });
const data = await loadDataset("data", "mnist");
const config = { batchSize: batch, lr: 1e-3, weightDecay: 1e-4, seed: 0, ...data.normalization };
// Built in the order given by --fused-first (a check that the order does not favour one).
const build = async (model: Model) => (await createTrainer(rt, model, data, config)).stepOps.train;
const first = fusedFirst ? await build(lenet5()) : await build(lenet5Apart());
const second = fusedFirst ? await build(lenet5Apart()) : await build(lenet5());
const steps = fusedFirst ? { apart: second, fused: first } : { apart: first, fused: second };

/** ms per step: `repeat` steps in one submit, waited for. */
async function timed(ops: Op[]): Promise<number> {
  const t0 = performance.now();
  submit(rt, ops, repeat);
  await idle(rt);
  return (performance.now() - t0) / repeat;
}

const median = (v: number[]) => v.toSorted((a, b) => a - b)[Math.floor(v.length / 2)];
const dispatches = (ops: Op[]) => ops.filter((o) => "kernel" in o).length;
for (const ops of Object.values(steps)) await timed(ops); // warm up
const times = { apart: [] as number[], fused: [] as number[] };
for (let p = 0; p < pairs; p++) {
  // Alternate which goes first, so that neither always follows the other.
  const order = p % 2 === 0 ? ["apart", "fused"] as const : ["fused", "apart"] as const;
  for (const which of order) times[which].push(await timed(steps[which]));
}
console.log(`${rt.description}; lenet5; kernels ${rt.tier.name}; batch ${batch}`);
for (const which of ["apart", "fused"] as const) {
  const ops = steps[which];
  console.log(
    `${which}: ${dispatches(ops)} dispatches, ${ops.length - dispatches(ops)} copies; ` +
      `median ${median(times[which]).toFixed(3)} ms a step`,
  );
}
const ratios = times.apart.map((t, i) => t / times.fused[i]);
console.log(`apart / fused: median ${median(ratios).toFixed(3)} over ${pairs} pairs`);
