/**
 * One whole training step of the seed's modern LeNet in float64, composed of the per-layer
 * references: gather and normalize, Conv, BN+ReLU, Conv, BN+ReLU, average pool, Linear,
 * cross-entropy, the backward of each, then AdamW. Parameters are read from and written to
 * the model's flat layout, so the result compares directly with the GPU's buffers.
 * @module
 */

import type { Model } from "../../lib/models.ts";
import { conv2dBackwardInput, conv2dBackwardWeight, conv2dForward } from "./conv2d.ts";
import { batchnorm2dBackward, batchnorm2dTrainForward } from "./batchnorm2d.ts";
import { adaptiveAvgPool2dBackward, adaptiveAvgPool2dForward } from "./pool.ts";
import { linearBackward, linearForward } from "./linear.ts";
import { crossEntropyReference } from "./cross_entropy.ts";
import { adamwReference } from "./adamw.ts";
import { type CpuDataset, gatherReference } from "./gather.ts";

/** The state a step reads and writes, in the model's flat layout. */
export interface StepState {
  params: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** What one step produced besides the new state. */
export interface StepResult {
  loss: number;
  correct: number;
  /** Gradients in the flat layout (trainable part). */
  grads: Float64Array;
}

/**
 * Runs one training step of `lenet()` on batch `batch` of `order` and updates `state` in
 * place (parameters, BN running statistics, moments). `t` is AdamW's step (1 for the first).
 */
export function lenetStepReference(
  model: Model,
  state: StepState,
  data: CpuDataset & {
    order: ArrayLike<number>;
    batch: number;
    batchSize: number;
    count: number;
  },
  hyper: { t: number; lr: number; weightDecay: number; mean: number; std: number },
): StepResult {
  const slice = (name: string) => {
    const e = model.layout.entries.find((x) => x.name === name)!;
    return state.params.subarray(e.offset, e.offset + e.size);
  };
  const grads = new Float64Array(model.layout.trainableSize);
  const gradOf = (name: string, values: ArrayLike<number>) => {
    const e = model.layout.entries.find((x) => x.name === name)!;
    grads.set(values, e.offset);
  };
  const n = data.count;
  const { x } = gatherReference(data, {
    ...data,
    pad: model.pad,
    mean: hyper.mean,
    std: hyper.std,
  });
  const labels = gatherReference(data, { ...data, pad: 0, mean: 0, std: 1 }).labels;

  const conv1 = { x: [n, 1, 28, 28], weight: [16, 1, 4, 4], stride: 2, padding: 0 } as const;
  const c1 = conv2dForward(conv1, {
    x,
    weight: slice("features.0.weight"),
    bias: slice("features.0.bias"),
  });
  const bn1 = batchnormStep(slice, "features.1", c1, [n, 16, 13, 13]);
  const conv2 = { x: [n, 16, 13, 13], weight: [32, 16, 4, 4], stride: 2, padding: 0 } as const;
  const c2 = conv2dForward(conv2, {
    x: bn1.y,
    weight: slice("features.3.weight"),
    bias: slice("features.3.bias"),
  });
  const bn2 = batchnormStep(slice, "features.4", c2, [n, 32, 5, 5]);
  const pooled = adaptiveAvgPool2dForward(bn2.y, [n, 32, 5, 5]);
  const fc = { batch: n, inFeatures: 32, outFeatures: 10 };
  const logits = linearForward({
    x: pooled,
    weight: slice("classifier.1.weight"),
    bias: slice("classifier.1.bias"),
  }, fc);
  const ce = crossEntropyReference(logits, labels, { classes: 10 });

  const dfc = linearBackward(
    { x: pooled, weight: slice("classifier.1.weight"), dy: ce.dlogits },
    fc,
  );
  gradOf("classifier.1.weight", dfc.dweight);
  gradOf("classifier.1.bias", dfc.dbias);
  const dbn2out = adaptiveAvgPool2dBackward(dfc.dx, [n, 32, 5, 5]);
  const dbn2 = batchnorm2dBackward({ ...bn2, x: c2, shape: [n, 32, 5, 5] }, {
    dy: dbn2out,
    weight: slice("features.4.weight"),
  }, { relu: true });
  gradOf("features.4.weight", dbn2.dweight);
  gradOf("features.4.bias", dbn2.dbias);
  const dconv2 = conv2dBackwardWeight(conv2, { x: bn1.y, dy: dbn2.dx });
  gradOf("features.3.weight", dconv2.dw);
  gradOf("features.3.bias", dconv2.db);
  const dbn1out = conv2dBackwardInput(conv2, { dy: dbn2.dx, weight: slice("features.3.weight") });
  const dbn1 = batchnorm2dBackward({ ...bn1, x: c1, shape: [n, 16, 13, 13] }, {
    dy: dbn1out,
    weight: slice("features.1.weight"),
  }, { relu: true });
  gradOf("features.1.weight", dbn1.dweight);
  gradOf("features.1.bias", dbn1.dbias);
  const dconv1 = conv2dBackwardWeight(conv1, { x, dy: dbn1.dx });
  gradOf("features.0.weight", dconv1.dw);
  gradOf("features.0.bias", dconv1.db);

  // Running statistics change only after the whole forward has read the old ones.
  slice("features.1.running_mean").set(bn1.runningMean);
  slice("features.1.running_var").set(bn1.runningVar);
  slice("features.4.running_mean").set(bn2.runningMean);
  slice("features.4.running_var").set(bn2.runningVar);

  const size = model.layout.trainableSize;
  const next = adamwReference({
    p: state.params.subarray(0, size),
    g: grads,
    m: state.m,
    v: state.v,
  }, { t: hyper.t, lr: hyper.lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: hyper.weightDecay });
  state.params.set(next.p);
  state.m.set(next.m);
  state.v.set(next.v);
  return { loss: ce.loss, correct: ce.correct, grads };
}

function batchnormStep(
  slice: (name: string) => Float64Array,
  name: string,
  x: ArrayLike<number>,
  shape: [number, number, number, number],
) {
  return batchnorm2dTrainForward({ x, shape }, {
    weight: slice(`${name}.weight`),
    bias: slice(`${name}.bias`),
    runningMean: slice(`${name}.running_mean`),
    runningVar: slice(`${name}.running_var`),
  }, { relu: true });
}
