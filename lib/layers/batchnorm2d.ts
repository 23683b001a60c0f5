/**
 * BatchNorm2d (PyTorch's semantics), optionally with the following ReLU fused in: batch
 * statistics in training (biased variance to normalize, unbiased for the running average),
 * running statistics in eval. Kernels: kernels/batchnorm2d.wgsl.
 * @module
 */

import {
  grid,
  kernel,
  type Op,
  op,
  type Tensor,
  tensor,
  textureMirror,
  uniform,
  view,
} from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

/** At most this many invocations per workgroup (one SIMD vector on llvmpipe). */
const WORKGROUP = 8;
/** eval_forward: about this many invocations (channel, slice of the batch). */
const EVAL_INVOCATIONS = 256;

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

/**
 * `t` seen as whole texels (4 floats each), for the kernels' vec4 stores: its buffer holds
 * whole texels, as tensor() makes it, and the kernels write no float past `t`'s end.
 */
function asTexels(t: Tensor): Tensor {
  return view(t, t.offset, [Math.ceil(t.size / 4), 4], `${t.label} (vec4)`);
}

// x [N,C,H,W], weight [C], bias [C] -> y [N,C,H,W]; saves mean, invstd, scale, shift [C,4]
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
  // Training and backward: one invocation per channel, in workgroups small enough that both
  // of llvmpipe's threads get one when there are few channels.
  const channelGroup = Math.min(WORKGROUP, Math.ceil(channels / 2));
  const slices = Math.min(batch, Math.ceil(EVAL_INVOCATIONS / channels));
  const shape = { BATCH: batch, CHANNELS: channels, PLANE: plane, RELU: config.relu ? 1 : 0 };
  const [trainK, evalK, backwardK] = await Promise.all([
    kernel(rt, "batchnorm2d.wgsl", "train_forward", { ...shape, WORKGROUP: channelGroup }),
    kernel(rt, "batchnorm2d.wgsl", "eval_forward", { ...shape, WORKGROUP, SLICES: slices }),
    kernel(rt, "batchnorm2d.wgsl", "backward", { ...shape, WORKGROUP: channelGroup }),
  ]);
  const saved = tensor(rt, [channels, 4], { label: "batchnorm2d mean, invstd, scale, shift" });
  // Fields as in the WGSL struct Params, in its order.
  const fields = (inputGrad: boolean, momentum: number) => ({
    "f32:eps": config.eps,
    "f32:momentum": momentum,
    input_grad: inputGrad ? 1 : 0,
  });
  const trainU = uniform(rt, "batchnorm2d train", fields(false, config.momentum));
  const evalU = uniform(rt, "batchnorm2d eval", fields(false, 0));
  const xt = textureMirror(rt, x);
  const dyt = textureMirror(rt, dy);
  const perChannel = grid(channels, channelGroup);
  const forwardBindings = [
    xt,
    params.weight,
    params.bias,
    params.running_mean,
    params.running_var,
    asTexels(y),
  ];
  const train: Op[] = [
    xt.copy,
    op(rt, trainK, [...forwardBindings, trainU, saved], perChannel),
  ];
  const evalOps: Op[] = [
    xt.copy,
    op(rt, evalK, [...forwardBindings, evalU], grid(channels * slices, WORKGROUP)),
  ];

  // dx [N,C,H,W], dweight [C], dbias [C] <- dy [N,C,H,W], x, saved statistics
  // x's mirror is refreshed by the training forward and still holds this step's x.
  // Without a dx to write (BatchNorm as the first layer), a stand-in is bound and not written.
  const dx = ctx.dx ?? tensor(rt, [4], { label: "batchnorm2d unused dx" });
  const backwardU = uniform(rt, "batchnorm2d backward", fields(ctx.dx !== null, 0));
  const backward: Op[] = [
    dyt.copy,
    op(
      rt,
      backwardK,
      [xt, dyt, saved, grads.weight, grads.bias, asTexels(dx), backwardU],
      perChannel,
    ),
  ];
  return { train, eval: evalOps, backward };
}
