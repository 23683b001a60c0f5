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
import { createAdamW } from "./optim.ts";
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
  /** The ops of one full-batch step, in order: for profiles and benchmarks. */
  stepOps: { train: Op[]; eval: Op[] };
  /**
   * Per-step (loss, correct) rows f32 [steps, 2] of the last training epoch and of the last
   * evaluation pass (row = batch index; rows past the steps done hold older values).
   */
  metrics: { train: Tensor; test: Tensor };
}

/** Everything one batch size needs: its graph and its ops. */
interface Pass {
  graph: Graph;
  trainStep: Op[];
  evalStep: Op[];
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

  // One graph per batch size: the full batch, and the last partial one of each split.
  const passes = new Map<number, Pass>();
  for (const count of new Set([B, data.train.count % B, data.test.count % B])) {
    if (count === 0) continue;
    const graph = await buildGraph(rt, model, { batch: count, params, grads });
    const labels = tensor(rt, [count], { dtype: "u32", label: `labels ${count}` });
    const gather = (dataset: GpuDataset, order: Tensor) =>
      gatherOp(rt, {
        dataset,
        order,
        state: state.tensor,
        x: graph.x,
        labels,
        batchSize: B,
        count,
        mean: config.mean,
        std: config.std,
        pad: model.pad,
      });
    const lossFor = (metrics: Tensor, dlogits: Tensor | null) =>
      crossEntropy(rt, { logits: graph.logits, labels, dlogits, metrics, state: state.tensor });
    passes.set(count, {
      graph,
      trainStep: [
        await gather(train, trainOrder),
        ...graph.train,
        await lossFor(trainMetrics, graph.dlogits),
        ...graph.backward,
        adam.op,
        state.advanceTrain,
      ],
      evalStep: [
        await gather(test, testOrder),
        ...graph.eval,
        await lossFor(testMetrics, null),
        state.advanceEval,
      ],
    });
  }

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
        stepsPerSubmit: config.stepsPerSubmit ?? 8,
        opsFor: (n) => passes.get(n)!.trainStep,
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
        batchSize: B,
        stepsPerSubmit: config.stepsPerSubmit ?? 8,
        opsFor: (n) => passes.get(n)!.evalStep,
        metrics: testMetrics,
        start: () => state.set(rt, { step: trainer.steps, batch: 0 }),
        onSteps: () => {},
        what: "evaluation",
      }, hooks);
    },
    stepOps: {
      train: passes.get(Math.min(B, data.train.count))!.trainStep,
      eval: passes.get(Math.min(B, data.train.count))!.evalStep,
    },
    async firstBatch(epoch) {
      upload(rt, trainOrder, epochOrder(config.seed, epoch, data.train.count));
      state.set(rt, { step: trainer.steps, batch: 0 });
      const pass = passes.get(Math.min(B, data.train.count))!;
      submit(rt, pass.trainStep.slice(0, 1));
      return await readback(rt, pass.graph.x);
    },
  };
  return trainer;
}

/** The shuffled order of one epoch: a function of (seed, epoch) only, so resuming repeats it. */
export function epochOrder(seed: number, epoch: number, n: number): Uint32Array<ArrayBuffer> {
  return permutation(random((seed * 1_000_003 + epoch * 7_919) >>> 0), n);
}

/** Runs ceil(count / batchSize) steps, `stepsPerSubmit` per submit, reading metrics now and then. */
async function runPass(
  rt: Runtime,
  pass: {
    count: number;
    batchSize: number;
    stepsPerSubmit: number;
    opsFor: (batch: number) => Op[];
    metrics: Tensor;
    start: () => void;
    onSteps: (n: number) => void;
    what: string;
  },
  hooks: PassHooks,
): Promise<PassResult> {
  const { count, batchSize } = pass;
  const full = Math.floor(count / batchSize);
  const total = Math.ceil(count / batchSize);
  const t0 = performance.now();
  let lastRefresh = t0, done = 0, inFlight: Promise<void> | undefined;
  pass.start();
  const read = async (steps: number) => {
    const rows = (await readback(rt, pass.metrics)).subarray(0, 2 * steps);
    let loss = 0, correct = 0;
    for (let s = 0; s < steps; s++) {
      if (!Number.isFinite(rows[2 * s])) {
        throw new Error(`${pass.what}: the loss of batch ${s + 1} is ${rows[2 * s]}`);
      }
      loss += rows[2 * s];
      correct += rows[2 * s + 1];
    }
    const images = Math.min(steps * batchSize, count);
    return {
      loss: loss / Math.max(1, steps),
      accuracy: (100 * correct) / Math.max(1, images),
      images,
    };
  };
  while (done < total && !hooks.shouldStop?.()) {
    const n = done < full ? Math.min(pass.stepsPerSubmit, full - done) : 1;
    submit(rt, pass.opsFor(done < full ? batchSize : count - full * batchSize), n);
    done += n;
    pass.onSteps(n);
    // Keep at most two submits in flight: the GPU stays busy and the queue stays short.
    const previous = inFlight;
    inFlight = idle(rt);
    await previous;
    const now = performance.now();
    if (hooks.onProgress && now - lastRefresh > 1000 * (hooks.refreshSeconds ?? 0.25)) {
      lastRefresh = now;
      hooks.onProgress({ done, total, ...(await read(done)) });
    }
  }
  const result = await read(done);
  hooks.onProgress?.({ done, total, ...result });
  return { ...result, seconds: (performance.now() - t0) / 1000 };
}
