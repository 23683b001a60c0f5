/**
 * The training and evaluation loop: every step on the GPU, one submit for several steps,
 * no readback per step. Per-step losses and correct counts accumulate in a GPU tensor that
 * is read only when the caller wants progress.
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
import { crossEntropy } from "./layers/cross_entropy.ts";
import { createAdamW } from "./adamw.ts";
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
  lr: number;
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
   * computed on its own, and a step writes one metrics row per batchSize images, the rows a
   * pass at batchSize writes, so the test loss stays the mean of per-batch mean losses.
   */
  evalBatchSize?: number;
}

/** What one pass over a split measured (the seed's numbers). */
export interface PassResult {
  /** The mean of the per-batch mean losses (the seed's running_loss / len(loader)). */
  loss: number;
  /** Percent correct. */
  accuracy: number;
  images: number;
  seconds: number;
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
  /** One epoch of training: shuffled with (seed, epoch), so a resumed run repeats it. */
  trainEpoch(epoch: number, hooks?: PassHooks): Promise<PassResult>;
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
   * (loss, correct) rows f32 [batches, 2] of the last training epoch and of the last
   * evaluation pass, one per batch of `batchSize` images (row = batch index; rows past the
   * batches done hold older values).
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
  });
  const train = uploadDataset(rt, data.train.images, data.train.labels, { label: "train" });
  const test = uploadDataset(rt, data.test.images, data.test.labels, { label: "test" });
  const trainOrder = tensor(rt, [data.train.count], { dtype: "u32", label: "train order" });
  const testOrder = tensor(rt, [data.test.count], { dtype: "u32", label: "test order" });
  upload(rt, testOrder, Uint32Array.from({ length: data.test.count }, (_, i) => i));
  const steps = (n: number) => Math.ceil(n / B);
  const trainMetrics = tensor(rt, [steps(data.train.count), 2], { label: "train metrics" });
  const testMetrics = tensor(rt, [steps(data.test.count), 2], { label: "test metrics" });

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
  // one metrics row per B images (one a step in training).
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
      group: B,
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
    async trainEpoch(epoch, hooks = {}) {
      upload(rt, trainOrder, epochOrder(config.seed, epoch, data.train.count));
      const result = await runPass(rt, {
        count: data.train.count,
        batchSize: B,
        group: B,
        stepsPerSubmit: config.stepsPerSubmit ?? 8,
        opsFor: (n) => trainSteps.get(n)!,
        metrics: trainMetrics,
        start: () => state.set(rt, { step: trainer.steps, batch: 0 }),
        onSteps: (n) => trainer.steps += n,
        what: `epoch ${epoch} training`,
      }, hooks);
      return result;
    },
    evaluate(hooks = {}) {
      return runPass(rt, {
        count: data.test.count,
        group: B,
        batchSize: E,
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
 * Runs ceil(count / batchSize) steps, `stepsPerSubmit` per submit, reading metrics now and
 * then. Each step writes one metrics row per `group` images (batchSize is a multiple of it),
 * and progress counts those rows.
 */
async function runPass(
  rt: Runtime,
  pass: {
    count: number;
    batchSize: number;
    group: number;
    stepsPerSubmit: number;
    opsFor: (batch: number) => Op[];
    metrics: Tensor;
    start: () => void;
    onSteps: (n: number) => void;
    what: string;
  },
  hooks: PassHooks,
): Promise<PassResult> {
  const { count, batchSize, group } = pass;
  const full = Math.floor(count / batchSize);
  const steps = Math.ceil(count / batchSize);
  const total = Math.ceil(count / group);
  // Metrics rows (batches of `group` images) written after s steps.
  const rowsAfter = (s: number) => Math.min((s * batchSize) / group, total);
  const t0 = performance.now();
  let lastRefresh = t0, stepsDone = 0, inFlight: Promise<void> | undefined;
  pass.start();
  const read = async (batches: number) => {
    const rows = (await readback(rt, pass.metrics)).subarray(0, 2 * batches);
    let loss = 0, correct = 0;
    for (let b = 0; b < batches; b++) {
      if (!Number.isFinite(rows[2 * b])) {
        throw new Error(`${pass.what}: the loss of batch ${b + 1} is ${rows[2 * b]}`);
      }
      loss += rows[2 * b];
      correct += rows[2 * b + 1];
    }
    const images = Math.min(batches * group, count);
    return {
      loss: loss / Math.max(1, batches),
      accuracy: (100 * correct) / Math.max(1, images),
      images,
    };
  };
  while (stepsDone < steps && !hooks.shouldStop?.()) {
    const n = stepsDone < full ? Math.min(pass.stepsPerSubmit, full - stepsDone) : 1;
    submit(rt, pass.opsFor(stepsDone < full ? batchSize : count - full * batchSize), n);
    stepsDone += n;
    pass.onSteps(n);
    // Keep at most two submits in flight: the GPU stays busy and the queue stays short.
    const previous = inFlight;
    inFlight = idle(rt);
    await previous;
    const now = performance.now();
    if (hooks.onProgress && now - lastRefresh > 1000 * (hooks.refreshSeconds ?? 0.25)) {
      lastRefresh = now;
      const done = rowsAfter(stepsDone);
      hooks.onProgress({ done, total, ...(await read(done)) });
    }
  }
  const done = rowsAfter(stepsDone);
  const result = await read(done);
  hooks.onProgress?.({ done, total, ...result });
  return { ...result, seconds: (performance.now() - t0) / 1000 };
}
