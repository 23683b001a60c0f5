/**
 * `deno task train`: the seed's training workflow on WebGPU. Prints versions, the adapter,
 * the data, the first batch's statistics, a model summary, a progress bar per pass and the
 * seed's per-epoch lines; writes runs/<run>/ (model, optimizer state, metrics, curves).
 * @module
 */

import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import cliProgress from "cli-progress";
import Table from "cli-table3";
import process from "node:process";
import { join } from "node:path";
import { createRuntime } from "../lib/device.ts";
import type { DeviceChoice } from "../lib/runtime.ts";
import { type Model, MODELS, summaryRows } from "../lib/models.ts";
import { createTrainer, type PassHooks, type PassResult, type Trainer } from "../lib/train.ts";
import { loadOptimizerDict, loadStateDict, optimizerDict, stateDict } from "../lib/checkpoint.ts";
import {
  exists,
  readSafetensorsFile,
  writeFileAtomic,
  writeSafetensorsFile,
} from "../lib/io/files.ts";
import { lineChartsSvg } from "../lib/io/charts.ts";
import { loadDataset, prepareDataset } from "../lib/io/mnist.ts";
import { readback, upload } from "../lib/runtime.ts";
import { nonNegativeInt, positiveInt } from "./cli_options.ts";

/** Per-epoch figures, as metrics.json holds them. */
interface EpochRecord {
  epoch: number;
  train_loss: number;
  train_acc: number;
  test_loss: number;
  test_acc: number;
  train_seconds: number;
  train_images_per_s: number;
  test_seconds: number;
}

function number(name: string, options: { min: number; exclusive?: boolean }) {
  return (value: string) => {
    const n = Number(value);
    const low = options.exclusive ? n <= options.min : n < options.min;
    if (value.trim() === "" || !Number.isFinite(n) || low) {
      const bound = options.exclusive ? `> ${options.min}` : `>= ${options.min}`;
      throw new InvalidArgumentError(`${name} must be a number ${bound}, got "${value}".`);
    }
    return n;
  };
}

const program = new Command()
  .name("deno task train")
  .description(
    "Train a LeNet on MNIST with WGSL kernels on WebGPU (the seed's workflow: AdamW, batch 32, 2 epochs).",
  )
  .addOption(new Option("--model <name>", "model").choices(Object.keys(MODELS)).default("lenet"))
  .addOption(
    new Option("--activation <name>", "lenet5: the activation after C1, C3, C5 and F6")
      .choices(["tanh", "sigmoid", "relu"]).default("tanh"),
  )
  .addOption(
    new Option("--pool <kind>", "lenet5: the subsampling of S2 and S4").choices(["avg", "max"])
      .default("avg"),
  )
  .addOption(
    new Option("--c3 <table>", "lenet5: C3 dense (full) or with LeCun's connection table (lecun)")
      .choices(["full", "lecun"]).default("full"),
  )
  .addOption(
    new Option("--dataset <name>", "dataset").choices(["mnist", "fashion-mnist"]).default("mnist"),
  )
  .option("--data <dir>", "folder of the data files (downloaded there when missing)", "data")
  .option("--epochs <n>", "epochs to train (with --resume: the total)", positiveInt("--epochs"), 2)
  .option("--batch-size <n>", "images per step", positiveInt("--batch-size"), 32)
  .option("--lr <x>", "AdamW learning rate", number("--lr", { min: 0, exclusive: true }), 1e-3)
  .option("--weight-decay <x>", "AdamW weight decay", number("--weight-decay", { min: 0 }), 1e-4)
  .option("--seed <n>", "seed of initialization and shuffling", nonNegativeInt("--seed"), 0)
  .addOption(
    new Option(
      "--device <kind>",
      "auto: a GPU if there is one; gpu: insist; cpu: the fallback adapter",
    )
      .choices(["auto", "gpu", "cpu"]).default("auto"),
  )
  .option("--out <dir>", "run folder (default: runs/<timestamp>)")
  .option("--resume <dir>", "continue the run in <dir> from its last completed epoch")
  .option("--limit <n>", "train on the first n training images only", positiveInt("--limit"))
  .option(
    "--steps-per-submit <n>",
    "training steps encoded per GPU submit",
    positiveInt("--steps-per-submit"),
    8,
  )
  .option("--quiet", "no progress bars")
  .showHelpAfterError();

type Options = ReturnType<typeof program.opts>;

async function main(): Promise<void> {
  program.parse(["deno", "train", ...Deno.args]);
  let options: Options = program.opts();
  for (const name of ["activation", "pool", "c3"] as const) {
    if (options.model !== "lenet5" && program.getOptionValueSource(name) === "cli") {
      throw new Error(`--${name} applies to --model lenet5 only`);
    }
  }
  let resumed: { epoch: number; records: EpochRecord[] } | undefined;
  if (options.resume) {
    const saved = await readRunOptions(options.resume);
    // The run's own settings win, except the number of epochs and how we run it.
    options = {
      ...saved,
      epochs: options.epochs,
      device: options.device,
      quiet: options.quiet,
      resume: options.resume,
    };
  }
  const out = options.resume ?? options.out ?? join("runs", timestamp());

  console.log(
    `Deno version: ${Deno.version.deno} (V8 ${Deno.version.v8}, TypeScript ${Deno.version.typescript})`,
  );
  const rt = await createRuntime(options.device as DeviceChoice);
  console.log(
    `Device used: ${rt.description} (WebGPU${rt.isFallback ? ", software adapter" : ""}` +
      `${rt.vendor ? `, vendor ${rt.vendor}` : ""}${
        rt.architecture ? `, ${rt.architecture}` : ""
      })`,
  );

  const dir = join(options.data, options.dataset);
  if (
    !(await exists(join(dir, "train.safetensors"))) ||
    !(await exists(join(dir, "test.safetensors")))
  ) {
    console.log(`No ${options.dataset} data in ${dir}: downloading it first.`);
    await prepareDataset({
      dataset: options.dataset as "mnist" | "fashion-mnist",
      out: options.data,
    });
  }
  const data = await loadDataset(options.data, options.dataset as "mnist" | "fashion-mnist");
  const train = options.limit
    ? {
      images: data.train.images.subarray(0, Math.min(options.limit, data.train.count) * 784),
      labels: data.train.labels.subarray(0, Math.min(options.limit, data.train.count)),
      count: Math.min(options.limit, data.train.count),
    }
    : data.train;
  console.log(`Training samples: ${train.count}`);
  console.log(`Test samples: ${data.test.count}`);

  const model = MODELS[options.model](options);
  checkBatchFits(rt, model, options.batchSize);
  const trainer = await createTrainer(rt, model, { train, test: data.test }, {
    batchSize: options.batchSize,
    lr: options.lr,
    weightDecay: options.weightDecay,
    seed: options.seed,
    mean: 0.1307,
    std: 0.3081,
    stepsPerSubmit: options.stepsPerSubmit,
  });
  if (options.resume) resumed = await restore(trainer, out);

  const first = await trainer.firstBatch((resumed?.epoch ?? 0) + 1);
  const mean = first.reduce((a, b) => a + b, 0) / first.length;
  const variance = first.reduce((a, b) => a + (b - mean) ** 2, 0) / (first.length - 1);
  console.log(`Batch mean: ${mean.toFixed(3)}`);
  console.log(`Batch standard deviation: ${Math.sqrt(variance).toFixed(3)}`);
  printSummary(model, options.batchSize);

  await Deno.mkdir(out, { recursive: true });
  console.log(`Run folder: ${out}`);
  let stopping = false;
  const onSigint = () => {
    if (stopping) Deno.exit(130);
    stopping = true;
    console.error("\nCtrl-C: stopping after the current steps (press again to quit at once).");
  };
  Deno.addSignalListener("SIGINT", onSigint);
  const records = resumed?.records ?? [];
  for (let epoch = (resumed?.epoch ?? 0) + 1; epoch <= options.epochs; epoch++) {
    const label = `Epoch ${epoch}/${options.epochs}`;
    const tr = await trainer.trainEpoch(
      epoch,
      hooks(`${label} [TRAIN]`, options.quiet, () => stopping),
    );
    if (stopping) break;
    const te = await trainer.evaluate(hooks(`${label} [TEST]`, options.quiet, () => stopping));
    if (stopping) break;
    records.push(record(epoch, tr, te));
    console.log(`Epoch ${epoch}`);
    console.log(` Train → Loss: ${tr.loss.toFixed(4)} | Acc: ${tr.accuracy.toFixed(2)}%`);
    console.log(` Test → Loss: ${te.loss.toFixed(4)} | Acc: ${te.accuracy.toFixed(2)}%`);
    await saveRun(trainer, out, { epoch, records, options, adapter: rt.description });
  }
  Deno.removeSignalListener("SIGINT", onSigint);
  if (stopping) {
    const last = records.at(-1)?.epoch ?? 0;
    console.error(
      last > 0
        ? `Interrupted: the checkpoint of epoch ${last} in ${out} is kept; continue with --resume ${out}.`
        : "Interrupted before the first epoch ended: no checkpoint was written.",
    );
    Deno.exit(130);
  }
  console.log(`Saved ${join(out, "model.safetensors")}, metrics.json and curves.svg.`);
}

/** A progress bar on stderr (tqdm's place), refreshed from the GPU's metrics. */
function hooks(label: string, quiet: boolean | undefined, shouldStop: () => boolean): PassHooks {
  if (quiet) return { shouldStop };
  const bar = new cliProgress.SingleBar({
    format:
      `${label} {bar} {value}/{total} | loss {loss} | acc {acc}% | {speed} img/s | ETA {eta_formatted}`,
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    barsize: 24,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  const t0 = performance.now();
  let started = false;
  return {
    shouldStop,
    refreshSeconds: 0.25,
    onProgress: (p) => {
      if (!started) bar.start(p.total, 0, { loss: "-", acc: "-", speed: "-" });
      started = true;
      const seconds = (performance.now() - t0) / 1000;
      bar.update(p.done, {
        loss: p.loss.toFixed(4),
        acc: p.accuracy.toFixed(2),
        speed: Math.round(p.images / Math.max(seconds, 1e-6)),
      });
      if (p.done === p.total) bar.stop();
    },
  };
}

function record(epoch: number, tr: PassResult, te: PassResult): EpochRecord {
  const round = (x: number, d: number) => Number(x.toFixed(d));
  return {
    epoch,
    train_loss: tr.loss,
    train_acc: tr.accuracy,
    test_loss: te.loss,
    test_acc: te.accuracy,
    train_seconds: round(tr.seconds, 3),
    train_images_per_s: Math.round(tr.images / tr.seconds),
    test_seconds: round(te.seconds, 3),
  };
}

/** Writes the checkpoint, optimizer state, metrics and curves; each file atomically. */
async function saveRun(
  trainer: Trainer,
  out: string,
  run: { epoch: number; records: EpochRecord[]; options: Options; adapter: string },
): Promise<void> {
  const { rt, model } = trainer;
  const params = await readback(rt, trainer.params);
  const metadata = {
    format: "pt",
    model: model.name,
    epoch: String(run.epoch),
    steps: String(trainer.steps),
    options: JSON.stringify({ ...run.options, resume: undefined }),
    metrics: JSON.stringify(run.records.at(-1)),
    adapter: run.adapter,
  };
  const m = await readback(rt, trainer.moments.m);
  const v = await readback(rt, trainer.moments.v);
  await writeSafetensorsFile(
    join(out, "optimizer.safetensors"),
    optimizerDict(model, { m, v }),
    metadata,
  );
  await writeFileAtomic(join(out, "metrics.json"), JSON.stringify(run.records, null, 2) + "\n");
  await writeFileAtomic(
    join(out, "curves.svg"),
    lineChartsSvg([
      {
        title: "Loss Evolution",
        xLabel: "Epoch",
        yLabel: "Loss",
        series: [
          { name: "Train Loss", values: run.records.map((r) => r.train_loss) },
          { name: "Test Loss", values: run.records.map((r) => r.test_loss) },
        ],
      },
      {
        title: "Accuracy Evolution",
        xLabel: "Epoch",
        yLabel: "Accuracy (%)",
        series: [
          { name: "Train Accuracy", values: run.records.map((r) => r.train_acc) },
          { name: "Test Accuracy", values: run.records.map((r) => r.test_acc) },
        ],
      },
    ]),
  );
  // The model last: its presence marks a complete epoch for --resume and evaluate.
  await writeSafetensorsFile(
    join(out, "model.safetensors"),
    stateDict(model, params, trainer.steps),
    metadata,
  );
}

/** Loads the last checkpoint of a run into the trainer; returns where it stopped. */
async function restore(
  trainer: Trainer,
  out: string,
): Promise<{ epoch: number; records: EpochRecord[] }> {
  const modelPath = join(out, "model.safetensors");
  const optimizerPath = join(out, "optimizer.safetensors");
  const file = await readSafetensorsFile(modelPath);
  const { params, steps } = loadStateDict(trainer.model, file, modelPath);
  const moments = loadOptimizerDict(
    trainer.model,
    await readSafetensorsFile(optimizerPath),
    optimizerPath,
  );
  upload(trainer.rt, trainer.params, params);
  upload(trainer.rt, trainer.moments.m, moments.m);
  upload(trainer.rt, trainer.moments.v, moments.v);
  trainer.steps = steps;
  const epoch = Number(file.metadata.epoch);
  const records = JSON.parse(await Deno.readTextFile(join(out, "metrics.json"))) as EpochRecord[];
  console.log(`Resuming ${out} after epoch ${epoch} (${steps} steps).`);
  return { epoch, records: records.filter((r) => r.epoch <= epoch) };
}

/** The options a run was started with, from its checkpoint's metadata. */
async function readRunOptions(dir: string): Promise<Options> {
  const path = join(dir, "model.safetensors");
  if (!(await exists(path))) {
    throw new Error(`--resume ${dir}: no ${path} (a run folder has one after its first epoch)`);
  }
  const { metadata } = await readSafetensorsFile(path);
  if (!metadata.options) {
    throw new Error(`${path}: no "options" in its metadata: not a run of ours`);
  }
  return JSON.parse(metadata.options) as Options;
}

/** Fails early, with the limit, when one activation of a batch exceeds the adapter's. */
function checkBatchFits(
  rt: { device: GPUDevice },
  model: Model,
  batch: number,
) {
  const limit = rt.device.limits.maxStorageBufferBindingSize;
  let shape = [batch, ...model.input];
  for (const { name, layer } of model.layers) {
    shape = layer.outputShape(shape);
    const bytes = shape.reduce((a, b) => a * b, 4);
    if (bytes > limit) {
      throw new Error(
        `--batch-size ${batch} is too large for this adapter: ${name}'s output takes ${bytes} bytes, ` +
          `the adapter binds at most ${limit}; use --batch-size ${
            Math.floor(batch * limit / bytes)
          } or less.`,
      );
    }
  }
}

function printSummary(model: Model, batch: number): void {
  const table = new Table({
    head: ["Layer (type)", "Output Shape", "Param #"],
    style: { head: [], border: [] },
    chars: { "mid": "", "left-mid": "", "mid-mid": "", "right-mid": "" },
    colAligns: ["left", "left", "right"],
  });
  table.push([`${model.name} (input)`, `[${[batch, ...model.input].join(", ")}]`, ""]);
  for (const row of summaryRows(model, batch)) {
    table.push([
      `${row.name} (${row.type})`,
      `[${row.outputShape.join(", ")}]`,
      row.params.toLocaleString("en-US"),
    ]);
  }
  console.log(table.toString());
  console.log(`Total trainable parameters: ${model.layout.trainableCount.toLocaleString("en-US")}`);
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, "-").replace("T", "_").slice(0, 19);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
