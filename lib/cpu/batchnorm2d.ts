/**
 * BatchNorm2d in the CPU wing (kernels/cpu/batchnorm2d.wgsl says why this shape pays on
 * llvmpipe). Tested against the plain tier (lib/layers/batchnorm2d.ts) and the float64
 * reference in tests/batchnorm2d_test.ts.
 * @module
 */

import { grid, op, type Runtime, type Tensor, tensor, uniform, view } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "../layers/layer.ts";
import { type BatchnormConfig, checkedShape } from "../layers/batchnorm2d.ts";
import { cpuKernel, textureMirror } from "./texture.ts";
import { handsOffPacked, packedTexture, unusedStorageTexture } from "./handoff.ts";

/** At most this many invocations per workgroup (one SIMD vector on llvmpipe). */
const WORKGROUP = 8;
/** eval_forward: about this many invocations (channel, slice of the batch). */
const EVAL_INVOCATIONS = 256;

/**
 * `t` seen as whole texels (4 floats each), for the kernels' vec4 stores: its buffer holds
 * whole texels, as tensor() makes it, and the kernels write no float past `t`'s end.
 */
function asTexels(t: Tensor): Tensor {
  return view(t, t.offset, [Math.ceil(t.size / 4), 4], `${t.label} (vec4)`);
}

/**
 * The tuned BatchNorm2d ops for `layer` built for `ctx`: one invocation per channel for the
 * training forward and the backward (no second dispatch to combine partial statistics), x
 * and dy read from texture mirrors, y and dx stored a vec4 at a time. The backward reads the
 * batch statistics the training forward saved (mean, invstd, scale, shift [C,4]), and x's
 * mirror that it refreshed.
 *
 * Next to the wing's Conv2d (lib/cpu/handoff.ts), x and dx (a conv before) or y and dy (a conv
 * after) are handed over packed: no mirror copies for them, and y (plain only in eval) or dx
 * is written packed for the conv.
 *
 * Before an AdaptiveAvgPool2d, the pool is fused into these kernels: this layer's ops are
 * empty, and the pool's (lib/cpu/adaptive_avg_pool2d.ts, made by {@linkcode fusedPool} for
 * the pool's tensors) normalize and pool in one dispatch, and read the pool's gradient in
 * the backward: two dispatches and a copy fewer.
 */
export async function buildBatchnorm2d(layer: Layer, ctx: LayerContext): Promise<LayerOps> {
  const config = layer.config as unknown as BatchnormConfig;
  const { rt, x, y, dy, params, grads } = ctx;
  const [batch, channels, height, width] = checkedShape(config, x.shape);
  const plane = height * width;
  // Training and backward: one invocation per channel, in workgroups small enough that both
  // of llvmpipe's threads get one when there are few channels.
  const channelGroup = Math.min(WORKGROUP, Math.ceil(channels / 2));
  // Handed over packed: x and dx from a conv before, y and dy to a conv after.
  const packedIn = handsOffPacked(ctx.before, layer);
  const packedOut = handsOffPacked(layer, ctx.after);
  const pool = ctx.after?.family === "adaptive_avg_pool2d";
  // eval_forward's slices: of the batch, or of its groups of four in the packed walk.
  const sliced = packedIn || packedOut || pool ? Math.ceil(batch / 4) : batch;
  const slices = Math.min(sliced, Math.ceil(EVAL_INVOCATIONS / channels));
  const shape = {
    BATCH: batch,
    CHANNELS: channels,
    PLANE: plane,
    RELU: config.relu ? 1 : 0,
    PACKED_IN: packedIn ? 1 : 0,
    PACKED_OUT: packedOut ? 1 : 0,
    POOL: pool ? 1 : 0,
  };
  const [trainK, evalK, backwardK] = await Promise.all([
    cpuKernel(rt, "batchnorm2d.wgsl", "train_forward", {
      ...shape,
      WORKGROUP: channelGroup,
      Y_PLAIN: packedOut || pool ? 0 : 1,
    }),
    cpuKernel(rt, "batchnorm2d.wgsl", "eval_forward", { ...shape, WORKGROUP, SLICES: slices }),
    cpuKernel(rt, "batchnorm2d.wgsl", "backward", { ...shape, WORKGROUP: channelGroup }),
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
  // x and dy: handed over packed, or plain tensors read from their mirrors.
  const input = (t: Tensor, handedOver: boolean) =>
    handedOver ? { binding: packedTexture(rt, t), copy: [] } : mirrored(rt, t);
  const xt = input(x, packedIn);
  // With the pool fused, dy is never written: x's texture stands in for it.
  const dyt = pool ? { binding: xt.binding, copy: [] } : input(dy, packedOut);
  const unused = unusedStorageTexture(rt);
  const perChannel = grid(channels, channelGroup);
  const forwardBindings = [
    xt.binding,
    params.weight,
    params.bias,
    params.running_mean,
    params.running_var,
    asTexels(y),
  ];
  const y4 = packedOut ? packedTexture(rt, y) : unused;
  // dx [N,C,H,W], dweight [C], dbias [C] <- dy [N,C,H,W], x, saved statistics
  // x's mirror is refreshed by the training forward and still holds this step's x.
  // Without a dx to write (BatchNorm as the first layer), a stand-in is bound and not written.
  const dx = ctx.dx ?? tensor(rt, [4], { label: "batchnorm2d unused dx" });
  const backwardU = uniform(rt, "batchnorm2d backward", fields(ctx.dx !== null, 0));
  const dx4 = packedIn ? packedTexture(rt, dx) : unused;
  // The ops, given the pool's output and its gradient (stand-ins without a fused pool).
  const ops = (pooled: Tensor, dpooled: Tensor): LayerOps => ({
    train: [
      ...xt.copy,
      op(rt, trainK, [...forwardBindings, trainU, y4, pooled, saved], perChannel),
    ],
    eval: [
      ...xt.copy,
      op(rt, evalK, [...forwardBindings, evalU, y4, pooled], grid(channels * slices, WORKGROUP)),
    ],
    backward: [
      ...dyt.copy,
      op(
        rt,
        backwardK,
        [
          xt.binding,
          dyt.binding,
          saved,
          grads.weight,
          grads.bias,
          asTexels(dx),
          backwardU,
          dx4,
          dpooled,
        ],
        perChannel,
      ),
    ],
    saved: { statistics: saved },
  });

  if (pool) {
    fusedPools.set(y, (poolCtx) => {
      if (!poolCtx.dx) throw new Error("AdaptiveAvgPool2d after BatchNorm2d: no gradient for it");
      return { ...ops(poolCtx.y, poolCtx.dy), saved: {} };
    });
    return { train: [], eval: [], backward: [], saved: { statistics: saved } };
  }
  const standIn = tensor(rt, [1], { label: "batchnorm2d no pool" });
  return ops(standIn, standIn);
}

/** The ops of a BatchNorm2d and the pool after it, by the BatchNorm's output (the pool's x). */
const fusedPools = new WeakMap<Tensor, (poolCtx: LayerContext) => LayerOps>();

/**
 * The fused ops of the BatchNorm2d whose output is `poolCtx.x`, for the AdaptiveAvgPool2d
 * after it, or undefined when that BatchNorm was not built by the wing.
 */
export function fusedPool(poolCtx: LayerContext): LayerOps | undefined {
  const build = fusedPools.get(poolCtx.x);
  fusedPools.delete(poolCtx.x);
  return build?.(poolCtx);
}

/** `t`'s texture mirror as a binding, and the copy that refreshes it. */
function mirrored(rt: Runtime, t: Tensor) {
  const mirror = textureMirror(rt, t);
  return { binding: mirror, copy: [mirror.copy] };
}
