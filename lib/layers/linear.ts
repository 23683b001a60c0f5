/**
 * Linear (fully connected): y = x W^T + b, with PyTorch's layout (weight [out, in]),
 * optionally with the activation after it fused in (LeNet-5's F6 -> tanh).
 * Kernels: kernels/linear.wgsl.
 * @module
 */

import { grid, kernel, op, tensor, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";
import { activationCode, type FusedActivation, typeWith } from "./fused_activation.ts";

const WORKGROUP = 64;
/** Each invocation computes a TILE x TILE block of its output (fixed in the kernel). */
const TILE = 4;

/** What a Linear layer is, for a tier (`Layer.config` of linear() and conv2dAsLinear()). */
export interface LinearConfig {
  inFeatures: number;
  outFeatures: number;
  /** The kernels' ACTIVATION override: 0 none, 1 tanh, 2 sigmoid, 3 relu. */
  activation: number;
}

/** The activation after a Linear. */
export interface LinearOptions {
  /**
   * An activation applied to the output, fused in: the layer is the Linear then nn.Tanh()
   * (or Sigmoid, ReLU), with the same floats as the two layers apart and no pass over the
   * Linear's own output (y holds the activation's). Its type is "Linear+Tanh"; in a model it
   * stands for two modules.
   */
  activation?: FusedActivation;
}

/**
 * `nn.Linear(inFeatures, outFeatures)`: parameters `weight` [out, in] and `bias` [out],
 * both uniform in +-1/sqrt(inFeatures) at init, as PyTorch's default. One dispatch forward,
 * one backward.
 *
 * @example
 * ```ts
 * const fc = linear(32, 10);
 * fc.outputShape([32, 32]); // [32, 10]
 * linear(120, 84, { activation: "tanh" }).type; // "Linear+Tanh"
 * ```
 */
export function linear(
  inFeatures: number,
  outFeatures: number,
  options: LinearOptions = {},
): Layer {
  const bound = 1 / Math.sqrt(inFeatures);
  const config: LinearConfig = {
    inFeatures,
    outFeatures,
    activation: activationCode("Linear", options.activation),
  };
  return {
    type: typeWith("Linear", options.activation),
    params: [
      {
        name: "weight",
        shape: [outFeatures, inFeatures],
        init: { uniform: bound },
        trainable: true,
      },
      { name: "bias", shape: [outFeatures], init: { uniform: bound }, trainable: true },
    ],
    outputShape: ([n]) => [n, outFeatures],
    flops: ([n]) => 2 * n * inFeatures * outFeatures,
    family: "linear",
    config: { ...config },
    build: (ctx) => build(ctx, config),
  };
}

const tiles = (n: number) => Math.ceil(n / TILE);

// x [N,IN], weight [OUT,IN], bias [OUT] -> y [N,OUT] (after the activation)
async function build(ctx: LayerContext, config: LinearConfig): Promise<LayerOps> {
  const { inFeatures: ins, outFeatures: outs, activation: ACTIVATION } = config;
  const { rt, x, y, dy, params, grads } = ctx;
  const batch = x.shape[0];
  if (x.size !== batch * ins) {
    throw new Error(`Linear(${ins}, ${outs}): input [${x.shape}] is not [N, ${ins}]`);
  }
  const [forwardK, backwardK] = await Promise.all([
    kernel(rt, "linear.wgsl", "forward", { WORKGROUP, ACTIVATION }),
    kernel(rt, "linear.wgsl", "backward", { WORKGROUP, ACTIVATION }),
  ]);
  // Workgroups per product of the backward: dx, dweight, dbias (a range each).
  const dxGroups = ctx.dx ? Math.ceil(tiles(batch) * tiles(ins) / WORKGROUP) : 0;
  const dweightGroups = Math.ceil(tiles(outs) * tiles(ins) / WORKGROUP);
  const dbiasGroups = Math.ceil(tiles(outs) / WORKGROUP);
  const u = uniform(rt, "linear", {
    batch,
    in_features: ins,
    out_features: outs,
    dx_groups: dxGroups,
    dweight_groups: dweightGroups,
    dbias_groups: dbiasGroups,
  });
  const forwardGroups = grid(tiles(batch) * tiles(outs), WORKGROUP);
  const backwardGroups = grid((dxGroups + dweightGroups + dbiasGroups) * WORKGROUP, WORKGROUP);

  // dx [N,IN], dweight [OUT,IN], dbias [OUT] <- dy [N,OUT], x, weight (and y: the activation)
  // Without a dx (Linear as the first layer), a stand-in is bound and no workgroup writes it.
  const dx = ctx.dx ?? tensor(rt, [1], { label: "linear unused dx" });
  const forward = [op(rt, forwardK, [x, params.weight, params.bias, y, u], forwardGroups)];
  return {
    train: forward,
    eval: forward,
    backward: [
      op(rt, backwardK, [x, params.weight, dy, grads.weight, grads.bias, u, dx, y], backwardGroups),
    ],
    saved: {},
  };
}
