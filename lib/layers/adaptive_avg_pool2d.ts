/**
 * AdaptiveAvgPool2d to a 1x1 output: the mean of each channel's plane.
 * Kernels: kernels/adaptive_avg_pool2d.wgsl.
 * @module
 */

import { grid, kernel, op, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

const WORKGROUP = 64;
/** dx values per invocation in the backward. */
const ELEMENTS = 4;

/**
 * `nn.AdaptiveAvgPool2d(1)`: [N,C,H,W] -> [N,C,1,1]; the backward spreads dy / (H*W).
 *
 * @example
 * ```ts
 * const pool = adaptiveAvgPool2d();
 * pool.outputShape([32, 32, 5, 5]); // [32, 32, 1, 1]
 * ```
 */
export function adaptiveAvgPool2d(): Layer {
  return {
    type: "AdaptiveAvgPool2d",
    params: [],
    family: "adaptive_avg_pool2d",
    config: {},
    outputShape: ([n, c]) => [n, c, 1, 1],
    build,
  };
}

// x [N,C,H,W] -> y [N,C,1,1]; backward dx [N,C,H,W] <- dy [N,C,1,1]
async function build(ctx: LayerContext): Promise<LayerOps> {
  const { rt, x, y, dy, dx } = ctx;
  if (x.shape.length !== 4) {
    throw new Error(`AdaptiveAvgPool2d: input [${x.shape}] is not [N,C,H,W]`);
  }
  const [n, c, h, w] = x.shape;
  const constants = { WORKGROUP, ELEMENTS };
  const [forwardK, backwardK] = await Promise.all([
    kernel(rt, "adaptive_avg_pool2d.wgsl", "forward", constants),
    kernel(rt, "adaptive_avg_pool2d.wgsl", "backward", constants),
  ]);
  const u = uniform(rt, "adaptive_avg_pool2d", { rows: n * c, plane: h * w });
  const forward = [op(rt, forwardK, [x, y, u], grid(n * c, WORKGROUP))];
  return {
    train: forward,
    eval: forward,
    backward: dx ? [op(rt, backwardK, [dy, dx, u], grid(x.size, WORKGROUP * ELEMENTS))] : [],
    saved: {},
  };
}
