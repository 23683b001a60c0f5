/**
 * ReLU as a layer of its own (a model that fuses it into BatchNorm2d does not need it).
 * Kernels: kernels/relu.wgsl.
 * @module
 */

import { grid, kernel, op, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

const WORKGROUP = 64;
/** Values per invocation. */
const ELEMENTS = 4;

/**
 * The ReLU layer: y = max(x, 0), dx = dy * (x > 0) (gradient 0 at x == 0, as in PyTorch).
 *
 * @example
 * ```ts
 * const layer = relu();
 * layer.outputShape([32, 16, 13, 13]); // [32, 16, 13, 13]
 * ```
 */
export function relu(): Layer {
  return {
    type: "ReLU",
    params: [],
    outputShape: (input) => [...input],
    build,
  };
}

// x [N,...] -> y [N,...]; backward dx [N,...] <- dy, x
async function build(ctx: LayerContext): Promise<LayerOps> {
  const { rt, x, y, dy, dx } = ctx;
  const constants = { WORKGROUP, ELEMENTS };
  const [forwardK, backwardK] = await Promise.all([
    kernel(rt, "relu.wgsl", "forward", constants),
    kernel(rt, "relu.wgsl", "backward", constants),
  ]);
  const u = uniform(rt, "relu", { count: x.size });
  const workgroups = grid(x.size, WORKGROUP * ELEMENTS);
  const forward = [op(rt, forwardK, [x, y, u], workgroups)];
  return {
    train: forward,
    eval: forward,
    backward: dx ? [op(rt, backwardK, [x, dy, dx, u], workgroups)] : [],
    saved: {},
  };
}
