/**
 * One whole training step of the seed's model (gather, forward, loss, backward, AdamW) at
 * batch 32, in images/s, and one eval step. Uses data/mnist when `deno task download` has
 * written it, else MNIST-shaped random bytes (the speed does not depend on the pixels).
 * The kernel tier: `deno task bench:train -- --kernels auto|plain|cpu` (default auto).
 * @module
 */

import { gpuBench } from "./util.ts";
import { benchData } from "./bench_data.ts";
import { parseArgs } from "node:util";
import { createRuntime, type KernelChoice } from "../lib/device.ts";
import { lenet } from "../lib/models.ts";
import { createTrainer, type Trainer } from "../lib/train.ts";

const { kernels } = parseArgs({
  args: Deno.args,
  options: { kernels: { type: "string", default: "auto" } },
}).values;
if (!["auto", "plain", "cpu"].includes(kernels)) {
  throw new Error(`--kernels: expected auto, plain or cpu, got "${kernels}"`);
}
const rt = createRuntime("auto", { kernels: kernels as KernelChoice });
const BATCH = 32;

let trainer: Promise<Trainer> | undefined;
function seedTrainer(): Promise<Trainer> {
  trainer ??= (async () =>
    createTrainer(await rt, lenet(), await benchData(), {
      batchSize: BATCH,
      lr: 1e-3,
      weightDecay: 1e-4,
      seed: 0,
      mean: 0.1307,
      std: 0.3081,
    }))();
  return trainer;
}

// ~1.4 MFLOP per image for forward + backward of the seed's model (conv1 and conv2 dominate).
const STEP_FLOPS = BATCH * 3 * (2 * 16 * 169 * 16 + 2 * 32 * 25 * 256);

gpuBench(`lenet training step, batch 32 (kernels ${kernels})`, rt, async () => {
  const t = await seedTrainer();
  return { ops: t.stepOps.train, work: { images: BATCH, flops: STEP_FLOPS } };
}, { repeat: 50 });

gpuBench(`lenet eval step, batch 32 (kernels ${kernels})`, rt, async () => {
  const t = await seedTrainer();
  return { ops: t.stepOps.eval, work: { images: BATCH, flops: STEP_FLOPS / 3 } };
}, { repeat: 50 });
