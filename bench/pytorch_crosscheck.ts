/**
 * `deno task bench:crosscheck`: our training against the seed's PyTorch code from the SAME
 * start. Both frameworks get the same initial state_dict and the same order of the training
 * images; every step's loss is recorded on both sides and compared, and so are the test
 * accuracies after each epoch. With the semantics equal, the losses agree to float32 rounding
 * for the first steps, then drift apart chaotically, while the accuracies stay close.
 *
 * The start comes from our RNG (our trainer's init for `--seed` and our epoch orders), or
 * with `--pytorch-init` from PyTorch's (`torch.manual_seed(seed)`, `LeNet()`, and the orders
 * the seed's DataLoader draws), so both RNGs can be tried in both frameworks. Our one trainer
 * takes the start through its seams: `loadState` (the initial weights), the `order` of each
 * epoch, and `onStep` to look at the first steps. The first `--detail-steps` steps are also
 * compared tensor by tensor, three ways: PyTorch, our GPU trainer, and our float64 reference
 * step (tests/reference/lenet_step.ts).
 *
 * The PyTorch side is bench/pytorch_crosscheck.py; it needs a python3 with torch (Debian's
 * python3-torch is /usr/bin/python3).
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import { join } from "node:path";
import { findPython } from "../tests/pytorch/python.ts";
import { readback } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { lenet, type Model } from "../lib/models.ts";
import {
  createTrainer,
  epochOrder,
  type Split,
  type TrainConfig,
  type Trainer,
} from "../lib/train.ts";
import { loadStateDict, stateDict } from "../lib/checkpoint.ts";
import { type Dataset, loadDataset } from "../lib/io/mnist.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "../lib/io/files.ts";
import { lenetStepReference } from "../tests/reference/lenet_step.ts";
import { dataOption, nonNegativeInt, positiveInt } from "../scripts/cli_options.ts";

/** One epoch of one framework: every step's loss and correct count, and the epoch's figures. */
export interface EpochRun {
  losses: number[];
  correct: number[];
  train_loss: number;
  train_acc: number;
  test_loss: number;
  test_acc: number;
  seconds: number;
}

/** The first steps of one framework, tensor by tensor, by PyTorch name. */
export interface StepDetail {
  loss: number;
  /** Gradients of the trainable tensors. */
  grads: Map<string, Float64Array>;
  /** The state_dict after the step (weights and BatchNorm running statistics). */
  state: Map<string, Float64Array>;
}

/**
 * Tensors moved by rounding noise: the conv biases that feed a BatchNorm (their exact gradient
 * is 0) and the running means that include them.
 */
const NOISE_DRIVEN = [
  "features.0.bias",
  "features.3.bias",
  "features.1.running_mean",
  "features.4.running_mean",
];

// Every one of the first 20 steps (where the losses should agree to f32 rounding), then fewer.
const CHECKED_STEPS = [
  ...Array.from({ length: 20 }, (_, i) => i + 1),
  50,
  100,
  200,
  500,
  1000,
  1875,
  2500,
  3000,
  3750,
];

const program = new Command()
  .name("deno task bench:crosscheck")
  .description(
    "Train the seed's LeNet in our WebGPU trainer and in PyTorch from the same initial weights " +
      "and the same batch order; compare every step's loss and the test accuracies.",
  )
  .option(
    "--seed <n>",
    "seed of the initial weights and of the batch order",
    nonNegativeInt("--seed"),
    0,
  )
  .option("--epochs <n>", "epochs to train in both frameworks", positiveInt("--epochs"), 1)
  .option(
    "--pytorch-init",
    "start from PyTorch's init and order (torch.manual_seed(seed)) instead of ours",
  )
  .addOption(dataOption("folder of the data files (MNIST in <dir>/mnist)"))
  .option("--threads <n>", "PyTorch's CPU threads", positiveInt("--threads"), 2)
  .option(
    "--detail-steps <n>",
    "first steps compared tensor by tensor (PyTorch, our GPU, our float64 reference); 0: none",
    nonNegativeInt("--detail-steps"),
    2,
  )
  .option(
    "--python <path>",
    "a python3 that imports torch (default: the first of /usr/bin/python3, python3)",
  )
  .option(
    "--pytorch-only",
    "train in PyTorch only, from the chosen start (many seeds quickly: chance against bias)",
  )
  .option("--keep <dir>", "keep the exchanged files (init, orders, results) in <dir>")
  .option("--json <file>", "also write the comparison as JSON")
  .showHelpAfterError();

type Options = ReturnType<typeof program.opts>;

/** The seed's settings; the normalization is the data file's (passed to PyTorch too). */
const CONFIG: Omit<TrainConfig, "seed" | "mean" | "std"> = {
  batchSize: 32,
  lr: 1e-3,
  weightDecay: 1e-4,
};

async function main(): Promise<void> {
  program.parse(["deno", "crosscheck", ...Deno.args]);
  const options = program.opts();
  const python = options.python ?? await torchPython();
  const data = await loadDataset(options.data, "mnist");
  const dir = options.keep ?? await Deno.makeTempDir({ prefix: "crosscheck-" });
  await Deno.mkdir(dir, { recursive: true });
  try {
    await crosscheck(options, { python, data, dir });
  } finally {
    if (!options.keep) await Deno.remove(dir, { recursive: true });
  }
}

/** Exports the start, trains both frameworks, prints and writes the comparison. */
async function crosscheck(
  options: Options,
  run: { python: string; data: Dataset; dir: string },
): Promise<void> {
  const { python, data, dir } = run;
  const rt = await createRuntime("auto");
  const model = lenet();
  const { mean, std } = data.normalization;
  const config: TrainConfig = { ...CONFIG, mean, std, seed: options.seed };
  const source = options.pytorchInit ? "PyTorch" : "ours";

  // One trainer (for --seed); with PyTorch's start, loadState gives it PyTorch's weights.
  const trainer = source === "ours" || !options.pytorchOnly
    ? await createTrainer(rt, model, { train: data.train, test: data.test }, config)
    : undefined;
  // The start: initial state_dict and each epoch's order, written where PyTorch reads them.
  let init: Float32Array<ArrayBuffer>;
  let orders: Uint32Array<ArrayBuffer>[];
  if (source === "PyTorch") {
    await runPython(python, ["init", options.seed, options.epochs, dir, dataDir(options)]);
    const path = join(dir, "init.safetensors");
    init = loadStateDict(model, await readSafetensorsFile(path), path).params;
    orders = await readOrders(join(dir, "orders.safetensors"), data.train.count);
  } else {
    init = new Float32Array((await trainer!.saveState()).params);
    orders = Array.from(
      { length: options.epochs },
      (_, e) => epochOrder(options.seed, e + 1, data.train.count),
    );
    await writeSafetensorsFile(join(dir, "init.safetensors"), stateDict(model, init, 0));
    await writeOrders(join(dir, "orders.safetensors"), orders);
  }

  console.log(
    `crosscheck: seed ${options.seed}, start drawn by ${source}'s RNG, ${options.epochs} epoch(s), ` +
      `full MNIST (${data.train.count} + ${data.test.count}); exchange folder ${dir}`,
  );
  const detailSteps = options.pytorchOnly
    ? 0
    : Math.min(options.detailSteps, Math.floor(data.train.count / CONFIG.batchSize));
  const t0 = performance.now();
  await runPython(python, [
    "train",
    dir,
    dataDir(options),
    options.threads,
    detailSteps,
    mean,
    std,
  ]);
  const torchRun = JSON.parse(await Deno.readTextFile(join(dir, "pytorch.json")));
  const theirs = torchRun.epochs as EpochRun[];
  console.log(
    `PyTorch ${torchRun.torch} (${torchRun.threads} threads): ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
  let report: Record<string, unknown> = {
    seed: options.seed,
    source,
    epochs: options.epochs,
    pytorch: theirs.map(({ losses: _, correct: __, ...rest }) => rest),
  };
  if (!trainer) {
    printEpochs(theirs);
  } else {
    const t1 = performance.now();
    const ours = await trainOurs(trainer, { init, orders });
    console.log(`ours (${rt.description}): ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    const summary = compareRuns(ours, theirs);
    printComparison(summary, ours, theirs);
    const details = detailSteps > 0
      ? await compareDetails(trainer, data.train, {
        init,
        order: orders[0],
        steps: detailSteps,
        torchPath: join(dir, "pytorch_detail.safetensors"),
      })
      : undefined;
    report = {
      ...report,
      ...summary,
      details,
      ours: ours.map(({ losses: _, correct: __, ...rest }) => rest),
    };
  }
  if (options.json) {
    await Deno.writeTextFile(options.json, JSON.stringify(report, null, 2) + "\n");
  }
}

function dataDir(options: Options): string {
  return join(options.data, "mnist");
}

/** The state of a trainer at the start: `init` and AdamW's moments zero, no step done. */
function startState(model: Model, init: Float32Array) {
  const moments = () => new Float32Array(model.layout.trainableSize);
  return { params: init, m: moments(), v: moments(), steps: 0 };
}

/**
 * Trains our model from `init` over `orders` (one epoch each) and records every step's loss
 * and correct count (the pass's batches) and each epoch's figures.
 */
async function trainOurs(
  trainer: Trainer,
  run: { init: Float32Array; orders: Uint32Array[] },
): Promise<EpochRun[]> {
  trainer.loadState(startState(trainer.model, run.init));
  const epochs: EpochRun[] = [];
  for (const [e, order] of run.orders.entries()) {
    const tr = await trainer.trainEpoch(e + 1, {}, { order });
    const te = await trainer.evaluate();
    epochs.push({
      losses: Array.from(tr.batches.loss),
      correct: Array.from(tr.batches.correct),
      train_loss: tr.loss,
      train_acc: tr.accuracy,
      test_loss: te.loss,
      test_acc: te.accuracy,
      seconds: tr.seconds,
    });
  }
  return epochs;
}

/** What the comparison of the per-step losses found. */
export interface Summary {
  steps: number;
  /** Global step numbers (from 1) and the losses there. */
  checked: { step: number; ours: number; pytorch: number; abs: number; rel: number }[];
  /** First step whose losses differ by more than 1e-6 and 1e-4 relative (null: none). */
  firstAbove1e6: number | null;
  firstAbove1e4: number | null;
}

/** Compares the per-step losses of both frameworks, all epochs end to end. */
function compareRuns(ours: EpochRun[], theirs: EpochRun[]): Summary {
  const a = ours.flatMap((e) => e.losses), b = theirs.flatMap((e) => e.losses);
  if (a.length !== b.length) {
    throw new Error(`ours made ${a.length} steps, PyTorch ${b.length}`);
  }
  const rel = (i: number) => Math.abs(a[i] - b[i]) / Math.abs(b[i]);
  const first = (limit: number) => {
    const i = a.findIndex((_, j) => !(rel(j) <= limit));
    return i < 0 ? null : i + 1;
  };
  const checked = [...new Set([...CHECKED_STEPS.filter((s) => s <= a.length), a.length])]
    .map((step) => ({
      step,
      ours: a[step - 1],
      pytorch: b[step - 1],
      abs: Math.abs(a[step - 1] - b[step - 1]),
      rel: rel(step - 1),
    }));
  return {
    steps: a.length,
    checked,
    firstAbove1e6: first(1e-6),
    firstAbove1e4: first(1e-4),
  };
}

function printComparison(summary: Summary, ours: EpochRun[], theirs: EpochRun[]): void {
  console.log("\nper-step training loss (the batch's mean loss before the step's update)");
  console.log("| step | ours | PyTorch | abs diff | rel diff |");
  console.log("|---:|---:|---:|---:|---:|");
  for (const c of summary.checked) {
    console.log(
      `| ${c.step} | ${c.ours.toFixed(7)} | ${c.pytorch.toFixed(7)} | ${c.abs.toExponential(2)} | ${
        c.rel.toExponential(2)
      } |`,
    );
  }
  console.log(
    `first step differing by > 1e-6 relative: ${summary.firstAbove1e6 ?? "none"}; ` +
      `by > 1e-4 relative: ${summary.firstAbove1e4 ?? "none"} (of ${summary.steps})`,
  );
  console.log(
    "\n| epoch | train loss ours | PyTorch | train acc ours | PyTorch | test loss ours | PyTorch | test acc ours | PyTorch |",
  );
  console.log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  ours.forEach((o, i) => {
    const t = theirs[i];
    console.log(
      `| ${i + 1} | ${o.train_loss.toFixed(4)} | ${t.train_loss.toFixed(4)} | ${
        o.train_acc.toFixed(2)
      }% | ${t.train_acc.toFixed(2)}% | ${o.test_loss.toFixed(4)} | ${t.test_loss.toFixed(4)} | ${
        o.test_acc.toFixed(2)
      }% | ${t.test_acc.toFixed(2)}% |`,
    );
  });
}

/** PyTorch's epochs alone (--pytorch-only). */
function printEpochs(theirs: EpochRun[]): void {
  console.log("\n| epoch | train loss | train acc | test loss | test acc |");
  console.log("|---:|---:|---:|---:|---:|");
  theirs.forEach((t, i) =>
    console.log(
      `| ${i + 1} | ${t.train_loss.toFixed(4)} | ${t.train_acc.toFixed(2)}% | ${
        t.test_loss.toFixed(4)
      } | ${t.test_acc.toFixed(2)}% |`,
    )
  );
}

/** How far two tensors are apart, relative to the scale of the second. */
interface TensorDiff {
  /** max |a - b|. */
  maxAbs: number;
  /** max |a - b| / max |b|. */
  rel: number;
}

function diff(a: ArrayLike<number>, b: ArrayLike<number>): TensorDiff {
  let maxAbs = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { maxAbs, rel: scale > 0 ? maxAbs / scale : maxAbs };
}

/**
 * The first `steps` steps three ways (PyTorch, our GPU trainer, our float64 reference), from
 * the same start and order: loss, every gradient, and every tensor of the state after the
 * step, as differences relative to the reference. Prints them and returns them.
 */
async function compareDetails(
  trainer: Trainer,
  train: Split,
  run: { init: Float32Array; order: Uint32Array; steps: number; torchPath: string },
) {
  const { init, order, steps } = run;
  const { model, config } = trainer;
  const torch = torchDetails(await readSafetensorsFile(run.torchPath), steps);
  const reference = referenceDetails(model, train, { config, init, order, steps });
  const gpu = await gpuDetails(trainer, { init, order, steps });
  const rows: {
    step: number;
    what: string;
    scale: number;
    gpu: TensorDiff;
    torch: TensorDiff;
    between: TensorDiff;
  }[] = [];
  const row = (
    step: number,
    what: string,
    g: ArrayLike<number>,
    t: ArrayLike<number>,
    r: ArrayLike<number>,
  ) =>
    rows.push({
      step,
      what,
      scale: Math.max(...Array.from(r, Math.abs)),
      gpu: diff(g, r),
      torch: diff(t, r),
      between: diff(g, t),
    });
  for (let k = 0; k < steps; k++) {
    const ref = reference[k];
    row(k + 1, "loss", [gpu[k].loss], [torch[k].loss], [ref.loss]);
    for (const [kind, key] of [["grad", "grads"], ["state", "state"]] as const) {
      for (const [name, expected] of ref[key]) {
        row(k + 1, `${kind} ${name}`, gpu[k][key].get(name)!, torch[k][key].get(name)!, expected);
      }
    }
  }
  console.log(
    "\nfirst steps, tensor by tensor, against our float64 reference (rel = max |diff| / max |ref|)",
  );
  console.log(
    "| step | tensor | max abs ref | our GPU (f32) rel | PyTorch (f32) rel | GPU vs PyTorch rel |",
  );
  console.log("|---:|---|---:|---:|---:|---:|");
  const e = (x: number) => x.toExponential(2);
  for (const r of rows) {
    const noise = NOISE_DRIVEN.some((b) => r.what.endsWith(b)) ? " *" : "";
    console.log(
      `| ${r.step} | ${r.what}${noise} | ${e(r.scale)} | ${e(r.gpu.rel)} | ${e(r.torch.rel)} | ${
        e(r.between.rel)
      } |`,
    );
  }
  console.log(
    "* a conv bias that feeds a BatchNorm: its exact gradient is 0 (the batch mean takes it " +
      "out), so its f32 gradient is rounding noise, which AdamW (g / sqrt(v)) turns into " +
      "steps of up to lr either way in every framework; the running_mean after it follows.",
  );
  return rows.map((r) => ({
    step: r.step,
    what: r.what,
    gpu: r.gpu.rel,
    pytorch: r.torch.rel,
    gpuVsPytorch: r.between.rel,
  }));
}

function torchDetails(
  file: { tensors: Map<string, { data: ArrayLike<number | bigint> }> },
  steps: number,
): StepDetail[] {
  const out: StepDetail[] = [];
  for (let k = 1; k <= steps; k++) {
    const grads = new Map<string, Float64Array>(), state = new Map<string, Float64Array>();
    let loss = NaN;
    for (const [key, t] of file.tensors) {
      const prefix = `step${k}.`;
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      const values = Float64Array.from(t.data as ArrayLike<number>);
      if (rest === "loss") loss = values[0];
      else if (rest.startsWith("grad.")) grads.set(rest.slice(5), values);
      else if (rest.startsWith("state.")) state.set(rest.slice(6), values);
    }
    out.push({ loss, grads, state });
  }
  return out;
}

/** Our float64 reference step, run `steps` times from `init` over `order`. */
function referenceDetails(
  model: Model,
  train: Split,
  run: { config: TrainConfig; init: Float32Array; order: Uint32Array; steps: number },
): StepDetail[] {
  const { config, init, order } = run;
  const state = {
    params: Float64Array.from(init),
    m: new Float64Array(model.layout.trainableSize),
    v: new Float64Array(model.layout.trainableSize),
  };
  const out: StepDetail[] = [];
  for (let k = 0; k < run.steps; k++) {
    const r = lenetStepReference(model, state, {
      ...train,
      height: 28,
      width: 28,
      order,
      batch: k,
      batchSize: config.batchSize,
      count: config.batchSize,
    }, { ...config, t: k + 1 });
    out.push({ loss: r.loss, ...sliceByName(model, state.params, r.grads) });
  }
  return out;
}

/**
 * Our GPU trainer's first `steps` steps from `init` over `order`: onStep reads each step's
 * loss, gradients and state, and the epoch stops after `steps` steps. (It leaves the trainer
 * mid-epoch; trainOurs loads the start again.)
 */
async function gpuDetails(
  trainer: Trainer,
  run: { init: Float32Array; order: Uint32Array; steps: number },
): Promise<StepDetail[]> {
  const { rt, model } = trainer;
  trainer.loadState(startState(model, run.init));
  const out: StepDetail[] = [];
  await trainer.trainEpoch(1, { shouldStop: () => out.length >= run.steps }, {
    order: run.order,
    onStep: async (step) => {
      const { params } = await trainer.saveState();
      const grads = await readback(rt, trainer.grads);
      out.push({ loss: step.loss, ...sliceByName(model, params, grads) });
    },
  });
  return out;
}

/** Gradients and state_dict tensors of the flat layout, by PyTorch name, in float64. */
function sliceByName(
  model: Model,
  params: ArrayLike<number>,
  grads: ArrayLike<number>,
): { grads: Map<string, Float64Array>; state: Map<string, Float64Array> } {
  const g = new Map<string, Float64Array>(), s = new Map<string, Float64Array>();
  const slice = (a: ArrayLike<number>, offset: number, size: number) =>
    Float64Array.from({ length: size }, (_, i) => a[offset + i]);
  for (const e of model.layout.entries) {
    s.set(e.name, slice(params, e.offset, e.size));
    if (e.trainable) g.set(e.name, slice(grads, e.offset, e.size));
  }
  return { grads: g, state: s };
}

async function readOrders(path: string, n: number): Promise<Uint32Array<ArrayBuffer>[]> {
  const t = (await readSafetensorsFile(path)).tensors.get("orders");
  if (!t || t.dtype !== "I32" || t.shape.length !== 2 || t.shape[1] !== n) {
    throw new Error(`${path}: expected orders I32 [epochs, ${n}]`);
  }
  const all = t.data as Int32Array;
  return Array.from(
    { length: t.shape[0] },
    (_, e) => Uint32Array.from(all.subarray(e * n, (e + 1) * n)),
  );
}

async function writeOrders(path: string, orders: Uint32Array[]): Promise<void> {
  const n = orders[0].length;
  const all = new Int32Array(orders.length * n);
  orders.forEach((o, e) => all.set(o, e * n));
  await writeSafetensorsFile(path, {
    orders: { dtype: "I32", shape: [orders.length, n], data: all },
  });
}

/** A python3 that imports torch: Debian's /usr/bin/python3 first (the pyenv one lacks it). */
async function torchPython(): Promise<string> {
  const python = await findPython(["torch"]);
  if (python) return python;
  throw new Error(
    "no python3 imports torch: apt-get install python3-torch, or pass --python <path>",
  );
}

async function runPython(python: string, args: (string | number)[]): Promise<void> {
  const script = new URL("./pytorch_crosscheck.py", import.meta.url).pathname;
  const out = await new Deno.Command(python, {
    args: [script, ...args.map(String)],
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${python} pytorch_crosscheck.py ${args.join(" ")} failed:\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
