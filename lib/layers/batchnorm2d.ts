/**
 * BatchNorm2d (PyTorch's semantics), optionally with the following ReLU fused in: batch
 * statistics in training (biased variance to normalize, unbiased for the running average),
 * running statistics in eval. Kernels: kernels/batchnorm2d.wgsl, the plain tier (the CPU
 * wing's tuned ones are lib/cpu/batchnorm2d.ts, tested against these).
 * @module
 */

import { grid, kernel, type Op, op, type Runtime, tensor, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

/** Invocations per workgroup of the per-value entry points. */
const WORKGROUP = 64;
/** Invocations per workgroup of the per-channel sums (a power of two: a tree sum). */
const SUM_WORKGROUP = 256;

/** What a BatchNorm2d layer was made with (its `config`). */
export interface BatchnormConfig {
  channels: number;
  eps: number;
  momentum: number;
  relu: boolean;
}

/**
 * A BatchNorm2d layer over `channels` channels; with `relu: true` it also applies the ReLU
 * that follows it (type "BatchNorm2d+ReLU"), which saves a pass over the activations.
 * Parameters (PyTorch names): `weight` (1), `bias` (0), and the buffers `running_mean` (0),
 * `running_var` (1); the counter `num_batches_tracked` is kept by the model.
 *
 * @example
 * ```ts
 * const bn = batchnorm2d(16, { relu: true });
 * bn.outputShape([32, 16, 13, 13]); // [32, 16, 13, 13]
 * ```
 */
export function batchnorm2d(
  channels: number,
  options: { eps?: number; momentum?: number; relu?: boolean } = {},
): Layer {
  const eps = options.eps ?? 1e-5;
  const momentum = options.momentum ?? 0.1;
  const relu = options.relu ?? false;
  return {
    type: relu ? "BatchNorm2d+ReLU" : "BatchNorm2d",
    params: [
      { name: "weight", shape: [channels], init: { constant: 1 }, trainable: true },
      { name: "bias", shape: [channels], init: { constant: 0 }, trainable: true },
      { name: "running_mean", shape: [channels], init: { constant: 0 }, trainable: false },
      { name: "running_var", shape: [channels], init: { constant: 1 }, trainable: false },
    ],
    counters: ["num_batches_tracked"],
    outputShape: (input) => [...input],
    family: "batchnorm2d",
    config: { channels, eps, momentum, relu },
    build: (ctx) => build(ctx, { channels, eps, momentum, relu }),
  };
}

/**
 * x's shape [N, C, H, W], checked against `config`: C channels and at least 2 values per
 * channel (the unbiased variance divides by M - 1).
 */
export function checkedShape(config: BatchnormConfig, shape: number[]): number[] {
  const [batch, channels, height, width] = shape;
  if (shape.length !== 4 || channels !== config.channels) {
    throw new Error(`BatchNorm2d(${config.channels}): input [${shape}] is not [N,C,H,W]`);
  }
  if (batch * height * width < 2) {
    throw new Error(`BatchNorm2d: training needs more than 1 value per channel, got [${shape}]`);
  }
  return shape;
}

/** The kernels' uniform: fields as in the WGSL struct Params, in its order. */
function params(rt: Runtime, config: BatchnormConfig, shape: number[], momentum: number) {
  const [batch, channels, height, width] = shape;
  return uniform(rt, "batchnorm2d", {
    batch,
    channels,
    plane: height * width,
    "f32:eps": config.eps,
    "f32:momentum": momentum,
  });
}

// x [N,C,H,W], weight [C], bias [C] -> y [N,C,H,W]; saves mean, invstd, scale, shift [C,4]
async function build(ctx: LayerContext, config: BatchnormConfig): Promise<LayerOps> {
  const { rt, x, y, dy, dx, params: p, grads } = ctx;
  const shape = checkedShape(config, x.shape);
  const channels = shape[1];
  const relu = { RELU: config.relu ? 1 : 0 };
  const [statsK, normalizeK, evalK, sumsK, inputK] = await Promise.all([
    kernel(rt, "batchnorm2d.wgsl", "statistics", { WORKGROUP: SUM_WORKGROUP, ...relu }),
    kernel(rt, "batchnorm2d.wgsl", "normalize", { WORKGROUP, ...relu }),
    kernel(rt, "batchnorm2d.wgsl", "eval_forward", { WORKGROUP, ...relu }),
    kernel(rt, "batchnorm2d.wgsl", "backward_sums", { WORKGROUP: SUM_WORKGROUP, ...relu }),
    kernel(rt, "batchnorm2d.wgsl", "backward_input", { WORKGROUP, ...relu }),
  ]);
  const saved = tensor(rt, [channels, 4], { label: "batchnorm2d mean, invstd, scale, shift" });
  const trainU = params(rt, config, shape, config.momentum);
  const u = params(rt, config, shape, 0);
  const perChannel = grid(channels * SUM_WORKGROUP, SUM_WORKGROUP);
  const perValue = grid(x.size, WORKGROUP);
  const { weight, bias, running_mean, running_var } = p;
  const train: Op[] = [
    op(rt, statsK, [x, weight, bias, running_mean, running_var, saved, trainU], perChannel),
    op(rt, normalizeK, [x, saved, y, u], perValue),
  ];
  const evalOps = [
    op(rt, evalK, [x, weight, bias, running_mean, running_var, y, u], perValue),
  ];
  // dx [N,C,H,W], dweight [C], dbias [C] <- dy [N,C,H,W], x, saved statistics
  const backward: Op[] = [op(rt, sumsK, [x, dy, saved, grads.weight, grads.bias, u], perChannel)];
  if (dx) {
    backward.push(op(rt, inputK, [x, dy, saved, grads.weight, grads.bias, dx, u], perValue));
  }
  return { train, eval: evalOps, backward, saved: { statistics: saved } };
}
