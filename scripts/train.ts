/**
 * `deno task train`: the notebook's training workflow on WebGPU. Prints versions, the adapter,
 * the data, the first batch's statistics, a model summary, a progress bar per pass and the
 * notebook's per-epoch lines; writes runs/<run>/ (model, optimizer state, metrics, curves).
 * One training writes a run folder at a time (train.lock); --resume continues a run's plan.
 * @module
 */

import { Command, Option } from "@commander-js/extra-typings";
import { join, resolve } from "node:path";
import type { Runtime } from "../lib/runtime.ts";
import { type Model, MODELS } from "../lib/models.ts";
import { createTrainer, type PassHooks, type PassResult, type Trainer } from "../lib/train.ts";
import { LR_SCHEDULES, type LrSchedule, type LrScheduleKind } from "../lib/lr_schedule.ts";
import { loadOptimizerDict, optimizerDict, stateDict } from "../lib/checkpoint.ts";
import { exists } from "../lib/io/files.ts";
import { lineChartsSvg } from "../lib/io/charts.ts";
import {
  type DatasetName,
  loadDataset,
  type Normalization,
  prepareDataset,
} from "../lib/io/mnist.ts";
import { summarize, summaryTotals } from "../lib/summary.ts";
import Table from "cli-table3";
import {
  dataOption,
  datasetOption,
  deviceOption,
  kernelsOption,
  nonNegativeInt,
  openRuntime,
  positiveInt,
  realNumber,
} from "./cli_options.ts";
import { onInterrupt, progressBar, runMain, stopBars } from "./terminal.ts";
import { claimRunFolder, loadCheckpoint, lockRun, saveCheckpoint } from "./run_folder.ts";
import { largestBatch } from "./batch_limit.ts";
import { IMAGE_PIXELS } from "../lib/data_gpu.ts";

/** Per-epoch figures, as metrics.json holds them. */
export interface EpochRecord {
  epoch: number;
  train_loss: number;
  train_acc: number;
  test_loss: number;
  test_acc: number;
  train_seconds: number;
  train_images_per_s: number;
  test_seconds: number;
  /** Each training batch's mean loss and accuracy (percent), in order: the curves' steps. */
  batches: { loss: number[]; acc: number[] };
}

const program = new Command()
  .name("deno task train")
  .description(
    "Train a LeNet on MNIST with WGSL kernels on WebGPU (the notebook's workflow: AdamW, batch 32, 2 epochs).",
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
  .addOption(datasetOption("dataset").default("mnist" as const))
  .addOption(dataOption("folder of the data files (downloaded there when missing)"))
  .option(
    "--epochs <n>",
    "epochs in total (with --resume: the run's own unless given)",
    positiveInt("--epochs"),
    2,
  )
  .option("--batch-size <n>", "images per step", positiveInt("--batch-size"), 32)
  .option("--lr <x>", "AdamW learning rate", realNumber("--lr", { min: 0, exclusive: true }), 1e-3)
  .addOption(
    new Option(
      "--lr-schedule <kind>",
      "the rate along the run's steps: constant (the notebook's), cosine (CosineAnnealingLR to 0), " +
        "onecycle (OneCycleLR, max_lr = --lr, PyTorch's defaults, beta1 cycled)",
    ).choices(LR_SCHEDULES).default("constant" as LrScheduleKind),
  )
  .option(
    "--weight-decay <x>",
    "AdamW weight decay",
    realNumber("--weight-decay", { min: 0 }),
    1e-4,
  )
  .option("--seed <n>", "RNG seed of initialization and shuffling", nonNegativeInt("--seed"), 0)
  .addOption(deviceOption())
  .addOption(kernelsOption())
  .option("--out <dir>", "run folder (default: runs/<timestamp>)")
  .option("--force", "replace the run that --out holds")
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

/** The options that make a run what it is: given with --resume, they must match the run's. */
const PLAN = [
  "model",
  "activation",
  "pool",
  "c3",
  "dataset",
  "batchSize",
  "lr",
  "lrSchedule",
  "weightDecay",
  "seed",
  "limit",
] as const;

/** What a resumed run starts from. */
interface Resumed {
  epoch: number;
  records: EpochRecord[];
  params: Float32Array<ArrayBuffer>;
  moments: { m: Float32Array<ArrayBuffer>; v: Float32Array<ArrayBuffer> };
  steps: number;
  normalization: Normalization;
  /** The kernel tier the run trained with so far. */
  kernels?: string;
}

async function main(): Promise<void> {
  program.parse(["deno", "train", ...Deno.args]);
  let options: Options = program.opts();
  const given = (name: string) => program.getOptionValueSource(name) === "cli";
  let out: string, release: () => void, resumed: Resumed | undefined;
  if (options.resume) {
    const plan = await resumePlan(options, given);
    if (!plan) return;
    ({ options, out, release, resumed } = plan);
  } else {
    for (const name of ["activation", "pool", "c3"] as const) {
      if (options.model !== "lenet5" && given(name)) {
        throw new Error(`--${name} applies to --model lenet5 only`);
      }
    }
    ({ dir: out, release } = await claimRunFolder(options.out, { force: options.force }));
  }
  try {
    await train(options, out, resumed);
  } finally {
    release();
  }
}

/**
 * The run to continue: its recorded options, with the total of epochs (`--epochs` given
 * changes it) and how to run it (device, kernels, data folder, quiet). Refuses options that
 * contradict the run; returns undefined, having said so, when nothing is left to train.
 */
async function resumePlan(options: Options, given: (name: string) => boolean) {
  const dir = options.resume!;
  if (given("out") && resolve(options.out!) !== resolve(dir)) {
    throw new Error(`--out ${options.out} with --resume ${dir}: a resumed run stays in its folder`);
  }
  if (options.force) {
    throw new Error("--force replaces a run and --resume continues it: give one of them");
  }
  if (!(await exists(join(dir, "model.safetensors")))) {
    throw new Error(
      `--resume ${dir}: no ${
        join(dir, "model.safetensors")
      } (a run folder has one after its first epoch)`,
    );
  }
  const release = await lockRun(dir);
  try {
    const point = await loadCheckpoint(dir);
    const saved = checkRecorded(point.options, join(dir, "model.safetensors"));
    for (const name of PLAN) {
      if (given(name) && options[name] !== saved[name]) {
        const flag = `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
        throw new Error(
          `${flag} ${options[name]} contradicts the run in ${dir}, which has ${
            saved[name] ?? "none"
          }: a resumed run keeps its settings (start a new run to change them)`,
        );
      }
    }
    const planned = typeof saved.epochs === "number" ? saved.epochs : options.epochs;
    const epochs = given("epochs") ? options.epochs : planned;
    const schedule = saved.lrSchedule ?? "constant";
    if (epochs !== planned && schedule !== "constant") {
      throw new Error(
        `--epochs ${epochs}: the run in ${dir} spreads its ${schedule} learning-rate schedule ` +
          `over ${planned} epoch${
            planned === 1 ? "" : "s"
          }; a resumed run keeps that length (start a new run to change it)`,
      );
    }
    if (epochs !== planned) {
      console.log(`Training to ${epochs} epochs in total (the run planned ${planned}).`);
    }
    if (point.epoch >= epochs) {
      console.log(
        `Nothing to do: ${dir} has trained ${point.epoch} of ${epochs} epochs; ` +
          `give --epochs with a larger total to train further.`,
      );
      release();
      return undefined;
    }
    const moments = loadOptimizerDict(point.model, point.optimizerFile, point.optimizerPath);
    const steps = point.steps; // the optimizer file's too: their checkpoint ids match
    const records = await readRecords(dir, point.epoch);
    console.log(`Resuming ${dir} after epoch ${point.epoch} (${steps} steps).`);
    return {
      out: dir,
      release,
      options: {
        ...options, // the defaults, for what older runs did not record
        ...saved,
        epochs,
        data: given("data") ? options.data : saved.data ?? options.data,
        device: options.device,
        kernels: options.kernels,
        quiet: options.quiet,
        stepsPerSubmit: options.stepsPerSubmit,
        resume: dir,
      } as Options,
      resumed: {
        epoch: point.epoch,
        records,
        params: point.params,
        moments,
        steps,
        normalization: point.normalization,
        kernels: point.metadata.kernels,
      },
    };
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * The options a checkpoint recorded, each checked as the command line would check it (a
 * choice among ours, a number in its range): they come from a file.
 */
function checkRecorded(recorded: Record<string, unknown>, path: string): Partial<Options> {
  for (const option of program.options) {
    const key = option.attributeName();
    const value = recorded[key];
    if (value === undefined || (!PLAN.includes(key as typeof PLAN[number]) && key !== "epochs")) {
      continue;
    }
    let ok = typeof value === "string" || typeof value === "number";
    if (ok && option.argChoices) ok = option.argChoices.includes(String(value));
    if (ok && option.parseArg) {
      try {
        ok = option.parseArg(String(value), undefined) === value;
      } catch {
        ok = false;
      }
    }
    if (!ok) {
      throw new Error(
        `${path}: its recorded option ${key} = ${JSON.stringify(value)} is not valid`,
      );
    }
  }
  return recorded as Partial<Options>;
}

/** The epoch records of metrics.json up to `epoch` (a later one may be of an unsaved epoch). */
async function readRecords(dir: string, epoch: number): Promise<EpochRecord[]> {
  const path = join(dir, "metrics.json");
  let records: unknown;
  try {
    records = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read the run's metrics (${(e as Error).message})`);
  }
  const valid = (r: Partial<EpochRecord> | null) =>
    typeof r?.epoch === "number" &&
    (r.batches === undefined || (Array.isArray(r.batches?.loss) && Array.isArray(r.batches?.acc)));
  if (!Array.isArray(records) || !records.every(valid)) {
    throw new Error(`${path}: not a list of epoch records`);
  }
  const kept = (records as EpochRecord[]).filter((r) => r.epoch <= epoch);
  if (kept.length !== epoch) {
    throw new Error(`${path}: holds ${kept.length} records of the ${epoch} epochs trained`);
  }
  return kept;
}

async function train(options: Options, out: string, resumed?: Resumed): Promise<void> {
  console.log(
    `Deno version: ${Deno.version.deno} (V8 ${Deno.version.v8}, TypeScript ${Deno.version.typescript})`,
  );
  const { rt, kernels } = await openRuntime(options.device, options.kernels);
  console.log(
    `Device used: ${rt.description} (WebGPU${rt.isFallback ? ", software adapter" : ""}` +
      `${rt.vendor ? `, vendor ${rt.vendor}` : ""}${
        rt.architecture ? `, ${rt.architecture}` : ""
      }; ${kernels} kernels)`,
  );
  if (resumed?.kernels && resumed.kernels !== kernels) {
    console.log(
      `Notice: the run trained with ${resumed.kernels} kernels so far and goes on with ${kernels} ` +
        `(their results agree closely, not bit for bit).`,
    );
  }

  const dataset = options.dataset as DatasetName;
  const dir = join(options.data, dataset);
  if (
    !(await exists(join(dir, "train.safetensors"))) ||
    !(await exists(join(dir, "test.safetensors")))
  ) {
    console.log(`No ${dataset} data in ${dir}: downloading it first.`);
    await prepareDataset({ dataset, out: options.data });
  }
  const data = await loadDataset(options.data, dataset);
  const count = Math.min(options.limit ?? data.train.count, data.train.count);
  const train = {
    images: data.train.images.subarray(0, count * IMAGE_PIXELS),
    labels: data.train.labels.subarray(0, count),
    count,
  };
  console.log(`Training samples: ${train.count}`);
  console.log(`Test samples: ${data.test.count}`);
  const normalization = resumed?.normalization ?? data.normalization;

  const model = MODELS[options.model](options);
  await checkBatchFits(rt, model, options.batchSize);
  // The schedule spans every step of the planned epochs; the step count picks the rate.
  const lrSchedule: LrSchedule = {
    kind: options.lrSchedule,
    totalSteps: options.epochs * Math.ceil(train.count / options.batchSize),
  };
  if (lrSchedule.kind !== "constant") {
    console.log(
      `Learning rate: ${lrSchedule.kind} schedule from --lr ${options.lr} over ` +
        `${lrSchedule.totalSteps!.toLocaleString("en-US")} steps (${options.epochs} epochs)`,
    );
  }
  const trainer = await createTrainer(rt, model, { train, test: data.test }, {
    batchSize: options.batchSize,
    lr: options.lr,
    lrSchedule,
    weightDecay: options.weightDecay,
    seed: options.seed,
    mean: normalization.mean,
    std: normalization.std,
    stepsPerSubmit: options.stepsPerSubmit,
  });
  if (resumed) {
    trainer.loadState({ params: resumed.params, ...resumed.moments, steps: resumed.steps });
  }

  const first = await trainer.firstBatch((resumed?.epoch ?? 0) + 1);
  const mean = first.reduce((a, b) => a + b, 0) / first.length;
  const variance = first.reduce((a, b) => a + (b - mean) ** 2, 0) / (first.length - 1);
  console.log(
    `Normalization: mean ${normalization.mean.toFixed(4)}, std ${
      normalization.std.toFixed(4)
    } (of ${dataset}'s training pixels)`,
  );
  console.log(`Batch mean: ${mean.toFixed(3)}`);
  console.log(`Batch standard deviation: ${Math.sqrt(variance).toFixed(3)}`);
  printSummary(model, options.batchSize);
  console.log(`Run folder: ${out}`);

  let stopping = false;
  const removeHandlers = onInterrupt((signal) => {
    const key = signal === "SIGINT" ? "Ctrl-C" : "SIGTERM";
    if (stopping) {
      console.error(`${key} again: quitting at once; the last saved checkpoint is kept.`);
      Deno.exit(130);
    }
    stopping = true;
    console.error(`${key}: stopping after the current steps (press Ctrl-C again to quit at once).`);
  });
  const records = resumed?.records ?? [];
  const stepsOf = (images: number) => Math.ceil(images / options.batchSize);
  try {
    for (let epoch = (resumed?.epoch ?? 0) + 1; epoch <= options.epochs; epoch++) {
      const label = `Epoch ${epoch}/${options.epochs}`;
      const tr = await trainer.trainEpoch(
        epoch,
        hooks(`${label} [TRAIN]`, stepsOf(train.count), options.quiet, () => stopping),
      );
      if (stopping) break;
      const batches = batchFigures(tr);
      const te = await trainer.evaluate(
        hooks(`${label} [TEST]`, stepsOf(data.test.count), options.quiet, () => stopping),
      );
      if (stopping) break;
      records.push(record(epoch, tr, te, batches));
      console.log(`Epoch ${epoch}`);
      console.log(` Train → Loss: ${tr.loss.toFixed(4)} | Acc: ${tr.accuracy.toFixed(2)}%`);
      console.log(` Test → Loss: ${te.loss.toFixed(4)} | Acc: ${te.accuracy.toFixed(2)}%`);
      await saveRun(trainer, out, {
        epoch,
        records,
        options,
        adapter: rt.description,
        kernels,
        normalization,
      });
    }
  } finally {
    removeHandlers();
    stopBars();
  }
  if (stopping) {
    const last = records.at(-1)?.epoch ?? 0;
    if (!resumed) {
      // A new run stopped before its first checkpoint leaves no folder behind (if empty).
      await Deno.remove(join(out, "train.lock")).catch(() => {});
      await Deno.remove(out).catch(() => {});
    }
    console.error(
      last > 0
        ? `Interrupted: the checkpoint of epoch ${last} in ${out} is kept; continue with --resume ${out}`
        : "Interrupted before the first epoch ended: no checkpoint was written.",
    );
    Deno.exit(130);
  }
  console.log(`Saved ${join(out, "model.safetensors")}, metrics.json and curves.svg.`);
}

/** A progress bar per pass of `total` batches, shown from its start; none once stopping. */
function hooks(
  label: string,
  total: number,
  quiet: boolean | undefined,
  shouldStop: () => boolean,
): PassHooks {
  if (quiet || shouldStop()) return { shouldStop };
  const t0 = performance.now();
  const bar = progressBar(
    `${label} {bar} {value}/{total} | loss {loss} | acc {acc}% | {speed} img/s | ETA {eta_formatted}`,
    total,
    { loss: "-", acc: "-", speed: "-" },
  );
  return {
    shouldStop,
    refreshSeconds: 0.25,
    onProgress: (p) => {
      if (shouldStop()) return;
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

/** Each training batch's mean loss and accuracy (percent) of a pass, for the curves. */
function batchFigures(tr: PassResult): EpochRecord["batches"] {
  const round = (x: number) => Number(x.toPrecision(5));
  const { loss, correct, images } = tr.batches;
  return {
    loss: Array.from(loss, round),
    acc: Array.from(correct, (c, i) => round((100 * c) / images[i])),
  };
}

function record(
  epoch: number,
  tr: PassResult,
  te: PassResult,
  batches: EpochRecord["batches"],
): EpochRecord {
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
    batches,
  };
}

/** Writes the checkpoint (one unit, see run_folder.ts), then the metrics and curves. */
async function saveRun(
  trainer: Trainer,
  out: string,
  run: {
    epoch: number;
    records: EpochRecord[];
    options: Options;
    adapter: string;
    kernels: string;
    normalization: Normalization;
  },
): Promise<void> {
  const { params, m, v, steps } = await trainer.saveState();
  const { resume: _resume, force: _force, quiet: _quiet, ...recorded } = run.options;
  const last = run.records.at(-1)!;
  await saveCheckpoint(out, {
    model: stateDict(trainer.model, params, steps),
    optimizer: optimizerDict(trainer.model, { m, v }),
    metadata: {
      format: "pt",
      model: trainer.model.name,
      epoch: String(run.epoch),
      steps: String(steps),
      options: JSON.stringify(recorded),
      metrics: JSON.stringify({ ...last, batches: undefined }),
      adapter: run.adapter,
      kernels: run.kernels,
      mean: String(run.normalization.mean),
      std: String(run.normalization.std),
    },
    files: {
      "metrics.json": JSON.stringify(run.records, null, 1) + "\n",
      "curves.svg": curvesSvg(run.records),
    },
  });
}

/**
 * The training loss and accuracy along the steps (each batch, and a running mean of 50), with
 * each epoch's test figures marked at the step where the epoch ended: TensorBoard's view.
 */
function curvesSvg(records: EpochRecord[]): string {
  const loss: [number, number][] = [], acc: [number, number][] = [];
  const testLoss: [number, number][] = [], testAcc: [number, number][] = [];
  let step = 0;
  for (const r of records) {
    // Runs from before the per-step figures have none for their first epochs.
    const batches = r.batches ?? { loss: [], acc: [] };
    batches.loss.forEach((l, i) => {
      step++;
      loss.push([step, l]);
      acc.push([step, batches.acc[i]]);
    });
    testLoss.push([step, r.test_loss]);
    testAcc.push([step, r.test_acc]);
  }
  const smooth = (points: [number, number][]) =>
    points.map(([x], i) => {
      const window = points.slice(Math.max(0, i - 49), i + 1);
      return [x, window.reduce((a, p) => a + p[1], 0) / window.length] as [number, number];
    });
  return lineChartsSvg([
    {
      title: "Loss Evolution",
      xLabel: "Step",
      yLabel: "Loss",
      series: [
        { name: "Train Loss (batch)", points: loss, faint: true },
        { name: "Train Loss (mean of 50)", points: smooth(loss) },
        { name: "Test Loss (epoch end)", points: testLoss, markers: true },
      ],
    },
    {
      title: "Accuracy Evolution",
      xLabel: "Step",
      yLabel: "Accuracy (%)",
      series: [
        { name: "Train Accuracy (batch)", points: acc, faint: true },
        { name: "Train Accuracy (mean of 50)", points: smooth(acc) },
        { name: "Test Accuracy (epoch end)", points: testAcc, markers: true },
      ],
    },
  ]);
}

/**
 * Fails early, with a batch size that fits, when this batch's activations exceed the
 * adapter's limits (storage binding size, texture size, dispatch size).
 */
async function checkBatchFits(rt: Runtime, model: Model, batch: number): Promise<void> {
  const fit = await largestBatch(rt, model, batch);
  if (fit.batch < batch) {
    throw new Error(
      `--batch-size ${batch} is too large for this adapter (${fit.reason}); ` +
        `use --batch-size ${fit.batch} or less.`,
    );
  }
}

/** torchinfo's table and totals (the notebook prints `summary(model, input_size=...)`). */
function printSummary(model: Model, batch: number): void {
  const summary = summarize(model, batch);
  const table = new Table({
    head: ["Layer (type)", "Output Shape", "Param #"],
    style: { head: [], border: [] },
    chars: { "mid": "", "left-mid": "", "mid-mid": "", "right-mid": "" },
    colAligns: ["left", "left", "right"],
  });
  table.push([`${model.name} (input)`, `[${summary.inputShape.join(", ")}]`, ""]);
  for (const row of summary.rows) {
    table.push([
      `${row.name} (${row.type})`,
      `[${row.outputShape.join(", ")}]`,
      row.params.toLocaleString("en-US"),
    ]);
  }
  console.log(table.toString());
  for (const line of summaryTotals(summary)) console.log(line);
}

if (import.meta.main) await runMain(main);
