/**
 * One whole training step of the seed's model (gather, forward, loss, backward, AdamW) at
 * batch 32, in images/s, and one eval step. Uses data/mnist when `deno task download` has
 * written it, else MNIST-shaped random bytes (the speed does not depend on the pixels).
 * The kernel tier: `deno bench -A bench/train_bench.ts -- --kernels auto|plain|cpu` (default
 * auto; `-- --help` lists the options).
 * @module
 */

import { gpuBench } from "./util.ts";
import { benchData } from "./bench_data.ts";
import { Command } from "@commander-js/extra-typings";
import { createRuntime } from "../lib/device.ts";
import { lenet } from "../lib/models.ts";
import { createTrainer, type Trainer } from "../lib/train.ts";
import { kernelsOption } from "../scripts/cli_options.ts";

// deno bench passes what follows `--` as Deno.args.
const { kernels } = new Command()
  .name("deno bench -A bench/train_bench.ts --")
  .description("Times a training step and an eval step of the seed's model at batch 32.")
  .addOption(kernelsOption())
  .showHelpAfterError()
  .parse(["deno", "train_bench", ...Deno.args])
  .opts();
const rt = createRuntime("auto", { kernels });
const BATCH = 32;

let trainer: Promise<Trainer> | undefined;
function seedTrainer(): Promise<Trainer> {
  trainer ??= (async () => {
    const data = await benchData();
    return createTrainer(await rt, lenet(), data, {
      batchSize: BATCH,
      lr: 1e-3,
      weightDecay: 1e-4,
      seed: 0,
      ...data.normalization,
    });
  })();
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
