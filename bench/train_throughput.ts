/**
 * `deno task bench:train`: training throughput against the batch size. Whole training steps
 * (gather, forward, loss, backward, AdamW, step state) of both models on both kernel tiers,
 * at batch 32 to 512, in images/s, with PyTorch's at the same batches beside them
 * (bench/train_throughput.py: the notebook's models, 2 threads). Run with `--help`.
 * @module
 */

import { Command, Option } from "@commander-js/extra-typings";
import { idle, type Op, type Runtime, submit } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { MODELS } from "../lib/models.ts";
import { createTrainer } from "../lib/train.ts";
import { findPython } from "../tests/pytorch/python.ts";
import { largestBatch } from "../scripts/batch_limit.ts";
import { choiceList, positiveInt, positiveIntList } from "../scripts/cli_options.ts";
import { runMain } from "../scripts/terminal.ts";
import { benchData } from "./bench_data.ts";

const MODEL_NAMES = Object.keys(MODELS);
const TIERS = ["plain", "cpu"] as const;

const program = new Command()
  .name("deno task bench:train")
  .description(
    "Images/s of whole training steps at each batch size, for each model and kernel tier, " +
      "with PyTorch's (2 threads) beside them. Trains on data/mnist when it is there, else on " +
      "random bytes (the speed does not depend on the pixels).",
  )
  .addOption(
    new Option("--batches <list>", "batch sizes, comma-separated")
      .argParser(positiveIntList("--batches")).default(
        [32, 64, 128, 256, 512],
        "32,64,128,256,512",
      ),
  )
  .addOption(
    new Option("--models <list>", `models, comma-separated: ${MODEL_NAMES.join(", ")}`)
      .argParser(choiceList("--models", MODEL_NAMES)).default(MODEL_NAMES, MODEL_NAMES.join(",")),
  )
  .addOption(
    new Option("--kernels <list>", "kernel tiers, comma-separated: plain, cpu")
      .argParser(choiceList("--kernels", TIERS)).default([...TIERS], TIERS.join(",")),
  )
  .option(
    "--images <n>",
    "images per timed submit, at least 4 steps",
    positiveInt("--images"),
    4096,
  )
  .option(
    "--trials <n>",
    "timed submits per figure; the median is reported",
    positiveInt("--trials"),
    3,
  )
  .option("--no-pytorch", "leave PyTorch's column out")
  .showHelpAfterError();

async function main(): Promise<void> {
  program.parse(["deno", "bench:train", ...Deno.args]);
  const { batches, models, kernels: tiers, images, trials, pytorch } = program.opts();

  // Enough images for the largest batch's steps; the figures do not depend on the pixels.
  const data = await benchData();
  const count = Math.min(data.train.count, Math.max(...batches) * 4);
  const train = {
    images: data.train.images.subarray(0, count * 784),
    labels: data.train.labels.subarray(0, count),
    count,
  };
  const testCount = Math.min(count, 1024);
  const test = {
    images: train.images.subarray(0, testCount * 784),
    labels: train.labels.subarray(0, testCount),
    count: testCount,
  };

  /** Median images/s of `trials` submits of whole steps. */
  async function throughput(rt: Runtime, ops: Op[], batch: number): Promise<number> {
    const steps = Math.max(4, Math.round(images / batch));
    submit(rt, ops, 2); // warm-up: the first submit of a pipeline pays for its compilation
    await idle(rt);
    const rates: number[] = [];
    for (let i = 0; i < trials; i++) {
      const t0 = performance.now();
      submit(rt, ops, steps);
      await idle(rt);
      rates.push((batch * steps) / ((performance.now() - t0) / 1000));
    }
    return rates.toSorted((a, b) => a - b)[Math.floor(trials / 2)];
  }

  const ours = new Map<string, number | string>(); // `${model} ${tier} ${batch}` -> images/s
  let adapter = "";
  for (const name of models) {
    for (const tier of tiers) {
      const rt = await createRuntime("auto", { kernels: tier });
      adapter = rt.description;
      const model = MODELS[name]();
      for (const batch of batches) {
        const key = `${name} ${tier} ${batch}`;
        const fit = await largestBatch(rt, model, batch);
        if (fit.batch < batch) {
          ours.set(key, "too large");
          continue;
        }
        const trainer = await createTrainer(rt, model, { train, test }, {
          batchSize: batch,
          lr: 1e-3,
          weightDecay: 1e-4,
          seed: 0,
          ...data.normalization,
          evalBatchSize: batch,
        });
        ours.set(key, await throughput(rt, trainer.stepOps.train, batch));
        console.error(`${key}: ${Math.round(ours.get(key) as number)} images/s`);
      }
      rt.device.destroy();
    }
  }

  let torch: Record<string, Record<string, number>> | undefined;
  if (pytorch) {
    const python = await findPython(["torch"]);
    if (!python) {
      console.error("No python3 imports torch (apt-get install python3-torch): no PyTorch column.");
    } else {
      const script = new URL("./train_throughput.py", import.meta.url).pathname;
      const out = await new Deno.Command(python, {
        args: [
          script,
          "--models",
          models.join(","),
          "--batches",
          batches.join(","),
          "--trials",
          String(trials),
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error(`${script} failed`);
      torch = JSON.parse(new TextDecoder().decode(out.stdout));
    }
  }

  const format = (v: number | string | undefined) =>
    typeof v === "number" ? Math.round(v).toLocaleString("en-US") : v ?? "";
  console.log(`Training images/s on ${adapter}, whole steps (PyTorch: 2 threads)`);
  const head = ["model", "batch", ...tiers.map((t) => `ours ${t}`), ...(torch ? ["PyTorch"] : [])];
  console.log(`| ${head.join(" | ")} |`);
  console.log(`|${head.map((_, i) => (i < 2 ? "---" : "---:")).join("|")}|`);
  for (const name of models) {
    for (const batch of batches) {
      const cells = tiers.map((t) => format(ours.get(`${name} ${t} ${batch}`)));
      if (torch) cells.push(format(torch[name]?.[String(batch)]));
      console.log(`| ${name} | ${batch} | ${cells.join(" | ")} |`);
    }
  }
}

if (import.meta.main) await runMain(main);
