/**
 * AvgPool2d and MaxPool2d (PyTorch's semantics: square window, stride = window unless
 * given, no padding, floor mode), optionally with the activation before them fused in
 * (LeNet-5's tanh -> pool). Kernels: kernels/pool2d.wgsl.
 * @module
 */

import { grid, kernel, op, tensor, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";
import { activationCode, FUSED_ACTIVATIONS, type FusedActivation } from "./fused_activation.ts";

const WORKGROUP = 64;
/** Values per invocation. */
const ELEMENTS = 4;

/** An activation a pooling layer can apply first (lib/layers/fused_activation.ts). */
export type PoolActivation = FusedActivation;

/**
 * What a pooling layer was made with (its `config`, for a tier's own build): max or average,
 * the window, and the fused activation's code (0 none, 1 tanh, 2 sigmoid, 3 relu: the
 * kernels' ACTIVATION).
 */
export interface Pool2dConfig {
  max: boolean;
  kernelSize: number;
  stride: number;
  activation: number;
}

/** A pooling window, and the activation to apply before it. */
export interface Pool2dOptions {
  kernelSize: number;
  /** The window's step; `kernelSize` unless given (PyTorch's default). */
  stride?: number;
  /**
   * An activation applied to the input first, fused in: the layer is nn.Tanh() (or Sigmoid,
   * ReLU) then the pooling, with the same floats as the two layers apart and no pass over the
   * activation's output. Its type is "Tanh+AvgPool2d"; in a model it stands for two modules.
   */
  activation?: PoolActivation;
}

/**
 * `nn.AvgPool2d(kernelSize, stride)`: [N,C,H,W] -> [N,C,P,Q], P = floor((H - R) / S) + 1,
 * the mean of each R x R window. One dispatch forward, one backward.
 *
 * @example
 * ```ts
 * const pool = avgPool2d({ kernelSize: 2 });
 * pool.outputShape([32, 6, 28, 28]); // [32, 6, 14, 14]
 * avgPool2d({ kernelSize: 2, activation: "tanh" }).type; // "Tanh+AvgPool2d"
 * ```
 */
export function avgPool2d(options: Pool2dOptions): Layer {
  return pool2d("avg", options);
}

/**
 * `nn.MaxPool2d(kernelSize, stride)`: the max of each window; the forward saves where it is
 * (as PyTorch's indices) and the backward routes dy there, to the first max of a window when
 * several are equal. One dispatch forward, one backward.
 *
 * @example
 * ```ts
 * const pool = maxPool2d({ kernelSize: 2 });
 * pool.outputShape([32, 16, 10, 10]); // [32, 16, 5, 5]
 * ```
 */
export function maxPool2d(options: Pool2dOptions): Layer {
  return pool2d("max", options);
}

function pool2d(kind: "avg" | "max", options: Pool2dOptions): Layer {
  const kernelSize = options.kernelSize;
  const stride = options.stride ?? kernelSize;
  const activation = options.activation;
  const pool = kind === "avg" ? "AvgPool2d" : "MaxPool2d";
  for (const [name, value] of Object.entries({ kernelSize, stride })) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`${pool}: ${name} = ${value} is not an integer >= 1`);
    }
  }
  const code = activationCode(pool, activation);
  const type = activation ? `${FUSED_ACTIVATIONS[activation]}+${pool}` : pool;
  const outputShape = (input: number[]): number[] => {
    const [n, c, h, w] = input;
    if (input.length !== 4) throw new Error(`${type}: input [${input}] is not [N,C,H,W]`);
    if (h < kernelSize || w < kernelSize) {
      throw new Error(
        `${type}: input [${input}] is smaller than the ${kernelSize}x${kernelSize} window`,
      );
    }
    const side = (size: number) => Math.floor((size - kernelSize) / stride) + 1;
    return [n, c, side(h), side(w)];
  };
  const config: Pool2dConfig = {
    max: kind === "max",
    kernelSize,
    stride,
    activation: code,
  };
  return {
    type,
    params: [],
    family: "pool2d",
    config: { ...config },
    outputShape,
    build: (ctx) => build(ctx, { kind, kernelSize, stride, activation: code, outputShape }),
  };
}

// x [N,C,H,W] -> y [N,C,P,Q] (max: and indices [N,C,P,Q] u32); backward dx [N,C,H,W] <- dy, x
async function build(
  ctx: LayerContext,
  config: {
    kind: "avg" | "max";
    kernelSize: number;
    stride: number;
    /** The fused activation's kernel code (0: none). */
    activation: number;
    outputShape: (input: number[]) => number[];
  },
): Promise<LayerOps> {
  const { rt, x, y, dy, dx } = ctx;
  const [n, c, height, width] = x.shape;
  const [, , outHeight, outWidth] = config.outputShape(x.shape);
  // The shapes are constants of the pipeline: the kernel divides by constants.
  const constants = {
    WORKGROUP,
    ELEMENTS,
    HEIGHT: height,
    WIDTH: width,
    OUT_HEIGHT: outHeight,
    OUT_WIDTH: outWidth,
    KERNEL_SIZE: config.kernelSize,
    STRIDE: config.stride,
    ACTIVATION: config.activation,
  };
  // Windows that do not overlap: one invocation a window writes its tile of dx; else one a
  // pixel of dx gathers from its windows.
  const tiles = config.stride >= config.kernelSize;
  const backwardEntry = `${config.kind}_backward${tiles ? "" : "_overlapping"}`;
  const [forwardK, backwardK] = await Promise.all([
    kernel(rt, "pool2d.wgsl", `${config.kind}_forward`, constants),
    kernel(rt, "pool2d.wgsl", backwardEntry, constants),
  ]);
  const u = uniform(rt, `${config.kind}_pool2d`, { planes: n * c });
  const yGroups = grid(y.size, WORKGROUP * ELEMENTS);
  const backwardGroups = tiles ? yGroups : grid(x.size, WORKGROUP * ELEMENTS);
  if (config.kind === "avg") {
    const forward = [op(rt, forwardK, [x, y, u], yGroups)];
    return {
      train: forward,
      eval: forward,
      backward: dx ? [op(rt, backwardK, [dy, dx, u, x], backwardGroups)] : [],
      saved: {},
    };
  }
  // Where each window's max is, written by the forward for the backward (eval writes it too).
  const indices = tensor(rt, y.shape, { dtype: "u32", label: "maxpool indices" });
  const forward = [op(rt, forwardK, [x, y, u, indices], yGroups)];
  return {
    train: forward,
    eval: forward,
    backward: dx ? [op(rt, backwardK, [dy, dx, u, x, indices], backwardGroups)] : [],
    saved: { "argmax indices": indices },
  };
}
