/**
 * The training and evaluation loop: every step on the GPU, one submit for several steps,
 * no readback per step. Each image's loss and correct flag accumulate in a GPU tensor that
 * is read only when the caller wants progress; {@linkcode passFigures} forms the seed's
 * per-batch means from them.
 * @module
 */

import { buildGraph, type Graph, type Model } from "./models.ts";
import { initParams } from "./params.ts";
import { permutation, random } from "./random.ts";
import {
  idle,
  type Op,
  readback,
  type Runtime,
  submit,
  type Tensor,
  tensor,
  upload,
} from "./runtime.ts";
import { gatherOp, type GpuDataset, uploadDataset } from "./data_gpu.ts";
import { crossEntropy, type MetricsRows, readMetrics } from "./layers/cross_entropy.ts";
import { createAdamW } from "./adamw.ts";
import type { LrSchedule } from "./lr_schedule.ts";
import { createStepState, type StepState } from "./step_state.ts";

/** Images and labels of one split, as the data files hold them. */
export interface Split {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

/** The seed's hyperparameters and ours. */
export interface TrainConfig {
  batchSize: number;
  /** AdamW's learning rate: the rate, or the schedule's base (OneCycleLR's max_lr). */
  lr: number;
  /**
   * How the rate moves along the run's steps (default constant, the notebook's): PyTorch's
   * CosineAnnealingLR or OneCycleLR stepped every batch, over `totalSteps` steps of the run
   * (all epochs). The step count the trainer keeps (and a resumed state restores) picks
   * each step's rate, so a resumed run continues the schedule where it stopped.
   */
  lrSchedule?: LrSchedule;
  weightDecay: number;
  seed: number;
  /** Normalization of the inputs (MNIST's: 0.1307, 0.3081). */
  mean: number;
  std: number;
  /** Steps encoded per submit (fewer submits; results do not depend on it). */
  stepsPerSubmit?: number;
  /**
   * Images per step of the test pass, a multiple of batchSize (default: up to 1,024, see
   * {@linkcode defaultEvalBatch}). Results do not depend on it: in eval mode each image is
   * computed on its own and writes its own metrics row, and the test loss is the mean of the
   * per-batch mean losses of batches of batchSize, as the seed's.
   */
  evalBatchSize?: number;
}

/** Figures of the seed's batches (of `batchSize` images) of a pass, one entry per batch. */
export interface BatchFigures {
  /** The batch's mean loss (the seed's loss.item()). */
  loss: Float32Array;
  /** Correct predictions in the batch. */
  correct: Uint32Array;
  /** Images in the batch: batchSize, the last batch of a split what is left. */
  images: Uint32Array;
}

/** What one pass over a split measured (the seed's numbers). */
export interface PassResult {
  /** The mean of the per-batch mean losses (the seed's running_loss / len(loader)). */
  loss: number;
  /** Percent correct. */
  accuracy: number;
  images: number;
  seconds: number;
  /** The pass's batches of `batchSize` images, in order (for per-step curves). */
  batches: BatchFigures;
}

/** One training step, as an `onStep` hook sees it: after the step ran, before the next. */
export interface StepReport {
  /** The step's index in the epoch (its batch, from 0). */
  batch: number;
  /** Images of the step. */
  images: number;
  /** The step's mean loss and its correct count. */
  loss: number;
  correct: number;
  /** Optimizer steps done so far, this one included. */
  steps: number;
}

/** How the caller steers one epoch of training. */
export interface EpochOptions {
  /**
   * The order in which the epoch visits the training images: a permutation of 0..count-1
   * (default {@linkcode epochOrder} of the config's seed and the epoch).
   */
  order?: Uint32Array;
  /**
   * Called after every step, which then waits for it: the caller may read the trainer's
   * tensors there. With it, steps are submitted one at a time and each waits for the device
   * (an epoch of MNIST took 2.5x as long on llvmpipe); without it nothing changes.
   */
  onStep?: (step: StepReport) => void | Promise<void>;
}

/** Progress of a pass, reported as often as the caller asks. */
export interface Progress {
  /** Batches of `batchSize` images done, of `total` (whatever the steps of the pass). */
  done: number;
  total: number;
  /** Images processed so far. */
  images: number;
  loss: number;
  accuracy: number;
}

/** How the caller follows and stops a pass. */
export interface PassHooks {
  /** Called with fresh figures about every `refreshSeconds` (a readback each time). */
  onProgress?: (p: Progress) => void;
  refreshSeconds?: number;
  /** Checked between submits: true ends the pass early (Ctrl-C). */
  shouldStop?: () => boolean;
}

/**
 * What a run needs to continue exactly where it stopped: the flat parameters (the model's
 * layout, BatchNorm buffers included), AdamW's moments (the trainable part of the layout) and
 * the optimizer steps done (AdamW's t; BatchNorm's num_batches_tracked).
 */
export interface TrainerState {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
  steps: number;
}

/** A model with its parameters, optimizer and data on one device. */
export interface Trainer {
  rt: Runtime;
  model: Model;
  config: TrainConfig;
  /** The flat parameter buffer (weights and BN buffers, the model's layout). */
  params: Tensor;
  /** Gradients of the last step (the trainable part of the layout). */
  grads: Tensor;
  /** AdamW's moments, in the trainable part of the layout. */
  moments: { m: Tensor; v: Tensor };
  /** Optimizer steps done so far (AdamW's t; BatchNorm's num_batches_tracked). */
  steps: number;
  /** Reads back the parameters, AdamW's moments and the step count (waits for the queue). */
  saveState(): Promise<TrainerState>;
  /**
   * Uploads a saved state (seen by the next pass). Throws, uploading nothing, when a length
   * does not match the model's layout or `steps` is not a u32.
   */
  loadState(state: TrainerState): void;
  /**
   * One epoch of training: shuffled with (seed, epoch), so a resumed run repeats it, unless
   * `options.order` gives the order; `options.onStep` sees every step.
   */
  trainEpoch(epoch: number, hooks?: PassHooks, options?: EpochOptions): Promise<PassResult>;
  /** One pass over the test split in eval mode. */
  evaluate(hooks?: PassHooks): Promise<PassResult>;
  /** The first shuffled batch of `epoch` as the GPU normalizes it (for the seed's printout). */
  firstBatch(epoch: number): Promise<Float32Array>;
  /**
   * The ops of one step of `batchSize` images, in order: for profiles and benchmarks. (The
   * test pass itself runs steps of `evalBatchSize` images.)
   */
  stepOps: { train: Op[]; eval: Op[] };
  /**
   * (loss, correct) rows f32 [images, 2] of the last training epoch and of the last
   * evaluation pass, one per image at its place in the pass (rows past the images done hold
   * older values).
   */
  metrics: { train: Tensor; test: Tensor };
}

/** A graph of one batch size and the labels tensor its gather fills. */
interface Slot {
  graph: Graph;
  labels: Tensor;
}

/**
 * Puts the model, its freshly initialized parameters (from `config.seed`), AdamW and both
 * splits on the device, and makes every op once.
 */
export async function createTrainer(
  rt: Runtime,
  model: Model,
  data: { train: Split; test: Split },
  config: TrainConfig,
): Promise<Trainer> {
  const { layout } = model;
  const B = config.batchSize;
  const E = config.evalBatchSize ??
    defaultEvalBatch(rt, model, { batchSize: B, count: data.test.count });
  if (!Number.isInteger(E) || E < B || E % B !== 0) {
    throw new Error(`evalBatchSize ${E} must be a multiple of batchSize (${B})`);
  }
  const params = tensor(rt, [layout.size], { label: "params" });
  const grads = tensor(rt, [layout.size], { label: "grads" });
  upload(rt, params, initParams(layout, random(config.seed)));
  const state: StepState = await createStepState(rt);
  const adam = await createAdamW(rt, {
    params,
    grads,
    state: state.tensor,
    n: layout.trainableSize,
    lr: config.lr,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: config.weightDecay,
    schedule: config.lrSchedule,
  });
  const train = uploadDataset(rt, data.train.images, data.train.labels, { label: "train" });
  const test = uploadDataset(rt, data.test.images, data.test.labels, { label: "test" });
  const trainOrder = tensor(rt, [data.train.count], { dtype: "u32", label: "train order" });
  const testOrder = tensor(rt, [data.test.count], { dtype: "u32", label: "test order" });
  upload(rt, testOrder, Uint32Array.from({ length: data.test.count }, (_, i) => i));
  const trainMetrics = tensor(rt, [data.train.count, 2], { label: "train metrics" });
  const testMetrics = tensor(rt, [data.test.count, 2], { label: "test metrics" });

  // One graph per batch size, shared by the steps of that size: training runs at B and the
  // epoch's last partial batch, the test pass at E and its last partial step.
  const slots = new Map<number, Slot>();
  const slot = async (count: number) => {
    if (!slots.has(count)) {
      const graph = await buildGraph(rt, model, { batch: count, params, grads });
      const labels = tensor(rt, [count], { dtype: "u32", label: `labels ${count}` });
      slots.set(count, { graph, labels });
    }
    return slots.get(count)!;
  };
  // A step of `count` images reads order[batch * batchSize + i], i < count; its loss writes
  // metrics rows batch * batchSize + i.
  const gather = (s: Slot, dataset: GpuDataset, order: Tensor, batchSize: number) =>
    gatherOp(rt, {
      dataset,
      order,
      state: state.tensor,
      x: s.graph.x,
      labels: s.labels,
      batchSize,
      count: s.graph.batch,
      mean: config.mean,
      std: config.std,
      pad: model.pad,
    });
  const loss = (s: Slot, metrics: Tensor, dlogits: Tensor | null, batchSize: number) =>
    crossEntropy(rt, {
      logits: s.graph.logits,
      labels: s.labels,
      dlogits,
      metrics,
      state: state.tensor,
      batchSize,
    });
  const trainStep = async (count: number) => {
    const s = await slot(count);
    return [
      await gather(s, train, trainOrder, B),
      ...s.graph.train,
      await loss(s, trainMetrics, s.graph.dlogits, B),
      ...s.graph.backward,
      adam.op,
      state.advanceTrain,
    ];
  };
  const evalStep = async (count: number, batchSize: number) => {
    const s = await slot(count);
    return [
      await gather(s, test, testOrder, batchSize),
      ...s.graph.eval,
      await loss(s, testMetrics, null, batchSize),
      state.advanceEval,
    ];
  };
  const trainSteps = await stepsOf(data.train.count, B, trainStep);
  const evalSteps = await stepsOf(data.test.count, E, (count) => evalStep(count, E));
  const first = Math.min(B, data.train.count);

  const trainer: Trainer = {
    rt,
    model,
    config,
    params,
    grads,
    moments: { m: adam.m, v: adam.v },
    steps: 0,
    metrics: { train: trainMetrics, test: testMetrics },
    async saveState() {
      const [p, m, v] = await Promise.all([params, adam.m, adam.v].map((t) => readback(rt, t)));
      return { params: p, m, v, steps: trainer.steps };
    },
    loadState(saved) {
      const expected = { params: layout.size, m: layout.trainableSize, v: layout.trainableSize };
      for (const [name, size] of Object.entries(expected)) {
        const got = saved[name as keyof typeof expected];
        if (!(got instanceof Float32Array) || got.length !== size) {
          const what = got instanceof Float32Array ? `${got.length} floats` : typeof got;
          throw new Error(
            `trainer state: ${name} holds ${what}; ${model.name}'s layout needs ${size} floats`,
          );
        }
      }
      if (!Number.isInteger(saved.steps) || saved.steps < 0 || saved.steps > 0xffffffff) {
        throw new Error(`trainer state: steps = ${saved.steps} is not a step count (a u32)`);
      }
      // Copies: upload wants arrays over a plain ArrayBuffer, and the caller keeps its own.
      upload(rt, params, new Float32Array(saved.params));
      upload(rt, adam.m, new Float32Array(saved.m));
      upload(rt, adam.v, new Float32Array(saved.v));
      trainer.steps = saved.steps;
    },
    async trainEpoch(epoch, hooks = {}, options = {}) {
      const { order, onStep } = options;
      if (order) checkOrder(order, data.train.count);
      upload(
        rt,
        trainOrder,
        order ? new Uint32Array(order) : epochOrder(config.seed, epoch, data.train.count),
      );
      const result = await runPass(rt, {
        count: data.train.count,
        batchSize: B,
        seedBatch: B,
        stepsPerSubmit: config.stepsPerSubmit ?? 8,
        opsFor: (n) => trainSteps.get(n)!,
        metrics: trainMetrics,
        start: () => state.set(rt, { step: trainer.steps, batch: 0 }),
        onSteps: (n) => trainer.steps += n,
        onStep: onStep && ((step) => onStep({ ...step, steps: trainer.steps })),
        what: `epoch ${epoch} training`,
      }, hooks);
      return result;
    },
    evaluate(hooks = {}) {
      return runPass(rt, {
        count: data.test.count,
        batchSize: E,
        seedBatch: B,
        // About as many images a submit as in training: the progress bar moves as often.
        stepsPerSubmit: Math.max(1, Math.round(((config.stepsPerSubmit ?? 8) * B) / E)),
        opsFor: (n) => evalSteps.get(n)!,
        metrics: testMetrics,
        start: () => state.set(rt, { step: trainer.steps, batch: 0 }),
        onSteps: () => {},
        what: "evaluation",
      }, hooks);
    },
    stepOps: { train: trainSteps.get(first)!, eval: await evalStep(first, B) },
    async firstBatch(epoch) {
      upload(rt, trainOrder, epochOrder(config.seed, epoch, data.train.count));
      state.set(rt, { step: trainer.steps, batch: 0 });
      submit(rt, trainSteps.get(first)!.slice(0, 1));
      return await readback(rt, slots.get(first)!.graph.x);
    },
  };
  return trainer;
}

/** The shuffled order of one epoch: a function of (seed, epoch) only, so resuming repeats it. */
export function epochOrder(seed: number, epoch: number, n: number): Uint32Array<ArrayBuffer> {
  return permutation(random((seed * 1_000_003 + epoch * 7_919) >>> 0), n);
}

/**
 * The eval batch when the config names none: a multiple of `batchSize` up to 1,024 images
 * whose activations fit one storage binding of the device, and if one of the upper half of
 * those leaves the same last partial batch as a pass at batchSize (k batches a step, with k
 * dividing the full batches), that one: the last step then needs no graph of its own.
 * MNIST's 10,000 at 32: 12 steps of 832, then the last 16. Measured on llvmpipe (lenet): the
 * test pass takes 1.6-2.0 s at 32, 1.0 s from 416 up to 1,248 (compute-bound, no longer
 * dispatch-bound).
 *
 * @example
 * ```ts
 * import { createRuntime } from "./device.ts";
 * import { lenet } from "./models.ts";
 *
 * const rt = await createRuntime();
 * defaultEvalBatch(rt, lenet(), { batchSize: 32, count: 10_000 }); // 832
 * ```
 */
export function defaultEvalBatch(
  rt: Runtime,
  model: Model,
  split: { batchSize: number; count: number },
): number {
  const { batchSize, count } = split;
  const limit = rt.device.limits.maxStorageBufferBindingSize;
  let shape = [1, ...model.input];
  let largest = shape.reduce((a, b) => a * b, 4);
  for (const { layer } of model.layers) {
    shape = layer.outputShape(shape);
    largest = Math.max(largest, shape.reduce((a, b) => a * b, 4));
  }
  const batches = Math.floor(count / batchSize);
  const most = Math.max(
    1,
    Math.min(Math.floor(limit / (largest * batchSize)), Math.round(1024 / batchSize), batches),
  );
  for (let k = most; k >= most / 2; k--) {
    if (batches % k === 0) return k * batchSize;
  }
  return most * batchSize;
}

/** The steps of a pass over `count` images at `batchSize`: full ones and the last partial. */
async function stepsOf(
  count: number,
  batchSize: number,
  make: (count: number) => Promise<Op[]>,
): Promise<Map<number, Op[]>> {
  const steps = new Map<number, Op[]>();
  for (const n of [count >= batchSize ? batchSize : 0, count % batchSize]) {
    if (n > 0 && !steps.has(n)) steps.set(n, await make(n));
  }
  return steps;
}

/**
 * The seed's figures of a pass from its metrics rows (one per image, in pass order): each
 * batch of `batchSize` images' mean loss and correct count, the mean of those means (the
 * seed's running_loss / len(loader)) and the percent correct. Sums are float64 over the
 * f32 rows, so the figures do not depend on how the steps cut the pass.
 *
 * @example
 * ```ts
 * const rows = { loss: new Float32Array([1, 3, 2]), correct: new Uint8Array([1, 0, 1]) };
 * passFigures(rows, 2); // loss (2 + 2) / 2 = 2, accuracy 66.7, batches.images [2, 1]
 * ```
 */
export function passFigures(
  rows: MetricsRows,
  batchSize: number,
): { loss: number; accuracy: number; images: number; batches: BatchFigures } {
  const images = rows.loss.length;
  const count = Math.ceil(images / batchSize);
  const batches = {
    loss: new Float32Array(count),
    correct: new Uint32Array(count),
    images: new Uint32Array(count),
  };
  let loss = 0, correct = 0;
  for (let b = 0; b < count; b++) {
    const from = b * batchSize, to = Math.min(images, from + batchSize);
    let sum = 0, hits = 0;
    for (let i = from; i < to; i++) {
      sum += rows.loss[i];
      hits += rows.correct[i];
    }
    batches.loss[b] = sum / (to - from);
    batches.correct[b] = hits;
    batches.images[b] = to - from;
    loss += batches.loss[b];
    correct += hits;
  }
  return {
    loss: loss / Math.max(1, count),
    accuracy: (100 * correct) / Math.max(1, images),
    images,
    batches,
  };
}

/** Checks that `order` is a permutation of 0..count-1 (a training split's indices). */
function checkOrder(order: Uint32Array, count: number): void {
  if (!(order instanceof Uint32Array) || order.length !== count) {
    const what = order instanceof Uint32Array ? `${order.length} indices` : typeof order;
    throw new Error(`trainEpoch: order holds ${what}; the training split has ${count} images`);
  }
  const seen = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const k = order[i];
    if (k >= count) {
      throw new Error(
        `trainEpoch: order[${i}] = ${k} is not an image of the split (0..${count - 1})`,
      );
    }
    if (seen[k]) {
      throw new Error(`trainEpoch: order[${i}] = ${k} repeats: it must be a permutation`);
    }
    seen[k] = 1;
  }
}

/**
 * Runs ceil(count / batchSize) steps, `stepsPerSubmit` per submit (one with `onStep`),
 * reading the metrics rows (one per image) now and then. Progress counts the seed's batches
 * of `seedBatch` images (batchSize is a multiple of it).
 */
async function runPass(
  rt: Runtime,
  pass: {
    count: number;
    batchSize: number;
    seedBatch: number;
    stepsPerSubmit: number;
    opsFor: (batch: number) => Op[];
    metrics: Tensor;
    start: () => void;
    onSteps: (n: number) => void;
    onStep?: (step: Omit<StepReport, "steps">) => void | Promise<void>;
    what: string;
  },
  hooks: PassHooks,
): Promise<PassResult> {
  const { count, batchSize, seedBatch } = pass;
  const full = Math.floor(count / batchSize);
  const steps = Math.ceil(count / batchSize);
  const total = Math.ceil(count / seedBatch);
  const imagesAfter = (s: number) => Math.min(s * batchSize, count);
  // The rows read so far: each progress reads only the rows written since the last.
  const rows = { loss: new Float32Array(count), correct: new Uint8Array(count) };
  let read = 0;
  const rowsUpTo = async (images: number) => {
    if (images > read) {
      const fresh = await readMetrics(rt, pass.metrics, { from: read, to: images });
      rows.loss.set(fresh.loss, read);
      rows.correct.set(fresh.correct, read);
      read = images;
    }
    return { loss: rows.loss.subarray(0, images), correct: rows.correct.subarray(0, images) };
  };
  const figures = async (images: number) => {
    const result = passFigures(await rowsUpTo(images), seedBatch);
    const bad = result.batches.loss.findIndex((l) => !Number.isFinite(l));
    if (bad >= 0) {
      throw new Error(`${pass.what}: the loss of batch ${bad + 1} is ${result.batches.loss[bad]}`);
    }
    return result;
  };
  const t0 = performance.now();
  let lastRefresh = t0, stepsDone = 0, inFlight: Promise<void> | undefined;
  pass.start();
  while (stepsDone < steps && !hooks.shouldStop?.()) {
    const n = stepsDone < full && !pass.onStep
      ? Math.min(pass.stepsPerSubmit, full - stepsDone)
      : 1;
    submit(rt, pass.opsFor(stepsDone < full ? batchSize : count - full * batchSize), n);
    stepsDone += n;
    pass.onSteps(n);
    if (pass.onStep) {
      // Reading the step's rows waits for it; the next step waits for the hook.
      const from = imagesAfter(stepsDone - 1), to = imagesAfter(stepsDone);
      const all = await rowsUpTo(to);
      const step = passFigures(
        { loss: all.loss.subarray(from), correct: all.correct.subarray(from) },
        to - from,
      );
      await pass.onStep({
        batch: stepsDone - 1,
        images: to - from,
        loss: step.loss,
        correct: step.batches.correct[0],
      });
    } else {
      // Keep at most two submits in flight: the GPU stays busy and the queue stays short.
      const previous = inFlight;
      inFlight = idle(rt);
      await previous;
    }
    const now = performance.now();
    if (hooks.onProgress && now - lastRefresh > 1000 * (hooks.refreshSeconds ?? 0.25)) {
      lastRefresh = now;
      const images = imagesAfter(stepsDone);
      const { loss, accuracy } = await figures(images);
      hooks.onProgress({ done: Math.ceil(images / seedBatch), total, images, loss, accuracy });
    }
  }
  const images = imagesAfter(stepsDone);
  const result = await figures(images);
  const done = Math.ceil(images / seedBatch);
  hooks.onProgress?.({ done, total, images, loss: result.loss, accuracy: result.accuracy });
  return { ...result, seconds: (performance.now() - t0) / 1000 };
}
