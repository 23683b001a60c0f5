/**
 * Tanh and Sigmoid, the classic activations of LeNet-5, as layers of their own.
 * Kernels: kernels/activation.wgsl (ReLU is lib/layers/relu.ts).
 * @module
 */

import { grid, kernel, op, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

const WORKGROUP = 64;
/** Values per invocation. */
const ELEMENTS = 4;

/**
 * `nn.Tanh()`: y = tanh(x); the backward reads the output: dx = dy * (1 - y^2).
 *
 * @example
 * ```ts
 * const layer = tanh();
 * layer.outputShape([32, 6, 28, 28]); // [32, 6, 28, 28]
 * ```
 */
export function tanh(): Layer {
  return elementwise("Tanh", "tanh");
}

/**
 * `nn.Sigmoid()`: y = 1 / (1 + exp(-x)); the backward reads the output: dx = dy * y * (1 - y).
 *
 * @example
 * ```ts
 * const layer = sigmoid();
 * layer.outputShape([32, 84]); // [32, 84]
 * ```
 */
export function sigmoid(): Layer {
  return elementwise("Sigmoid", "sigmoid");
}

function elementwise(type: string, entry: "tanh" | "sigmoid"): Layer {
  return {
    type,
    params: [],
    outputShape: (input) => [...input],
    build: (ctx) => build(ctx, entry),
  };
}

// x [N,...] -> y [N,...]; backward dx [N,...] <- y, dy
async function build(ctx: LayerContext, entry: "tanh" | "sigmoid"): Promise<LayerOps> {
  const { rt, x, y, dy, dx } = ctx;
  const constants = { WORKGROUP, ELEMENTS };
  const [forwardK, backwardK] = await Promise.all([
    kernel(rt, "activation.wgsl", `${entry}_forward`, constants),
    kernel(rt, "activation.wgsl", `${entry}_backward`, constants),
  ]);
  const u = uniform(rt, entry, { count: x.size });
  const workgroups = grid(x.size, WORKGROUP * ELEMENTS);
  const forward = [op(rt, forwardK, [x, y, u], workgroups)];
  return {
    train: forward,
    eval: forward,
    backward: dx ? [op(rt, backwardK, [y, dy, dx, u], workgroups)] : [],
    saved: {},
  };
}
