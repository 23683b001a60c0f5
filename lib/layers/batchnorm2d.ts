/**
 * BatchNorm2d (PyTorch's semantics), optionally with the following ReLU fused in: batch
 * statistics in training (biased variance to normalize, unbiased for the running average),
 * running statistics in eval. Kernels: kernels/batchnorm2d.wgsl.
 * @module
 */

import { grid, kernel, op, tensor, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

/** Invocations per workgroup: per channel in training and backward, per element in eval. */
const WORKGROUP = 64;
/** Consecutive values per invocation in eval. */
const CHUNK = 8;

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
    build: (ctx) => build(ctx, { channels, eps, momentum, relu }),
  };
}

// x [N,C,H,W], weight [C], bias [C] -> y [N,C,H,W]; saves mean and invstd [2,C] for backward
async function build(
  ctx: LayerContext,
  config: { channels: number; eps: number; momentum: number; relu: boolean },
): Promise<LayerOps> {
  const { rt, x, y, dy, params, grads } = ctx;
  const [batch, channels, height, width] = x.shape;
  if (x.shape.length !== 4 || channels !== config.channels) {
    throw new Error(`BatchNorm2d(${config.channels}): input [${x.shape}] is not [N,C,H,W]`);
  }
  const plane = height * width;
  if (batch * plane < 2) {
    throw new Error(`BatchNorm2d: training needs more than 1 value per channel, got [${x.shape}]`);
  }
  const constants = { WORKGROUP, CHUNK, RELU: config.relu ? 1 : 0 };
  const [trainK, evalK, backwardK] = await Promise.all([
    kernel(rt, "batchnorm2d.wgsl", "train_forward", constants),
    kernel(rt, "batchnorm2d.wgsl", "eval_forward", constants),
    kernel(rt, "batchnorm2d.wgsl", "backward", constants),
  ]);
  const stats = tensor(rt, [2, channels], { label: "batchnorm2d mean, invstd" });
  const count = x.size;
  // Fields as in the WGSL struct Params, in its order.
  const fields = (inputGrad: boolean, momentum: number) => ({
    batch,
    channels,
    plane,
    count,
    input_grad: inputGrad ? 1 : 0,
    "f32:eps": config.eps,
    "f32:momentum": momentum,
  });
  const trainU = uniform(rt, "batchnorm2d train", fields(false, config.momentum));
  const evalU = uniform(rt, "batchnorm2d eval", fields(false, 0));
  const forwardTensors = [
    x,
    y,
    params.weight,
    params.bias,
    params.running_mean,
    params.running_var,
  ];

  // dx [N,C,H,W], dweight [C], dbias [C] <- dy [N,C,H,W], x, weight, bias, saved stats
  // Without a dx to write (BatchNorm as the first layer), a stand-in is bound and not written.
  const dx = ctx.dx ?? tensor(rt, [1], { label: "batchnorm2d unused dx" });
  const backwardU = uniform(rt, "batchnorm2d backward", fields(ctx.dx !== null, 0));
  return {
    train: [op(rt, trainK, [...forwardTensors, stats, trainU], channels)],
    eval: [op(rt, evalK, [...forwardTensors, evalU], grid(Math.ceil(count / CHUNK), WORKGROUP))],
    backward: [
      op(rt, backwardK, [
        x,
        dy,
        params.weight,
        params.bias,
        stats,
        grads.weight,
        grads.bias,
        dx,
        backwardU,
      ], channels),
    ],
  };
}
