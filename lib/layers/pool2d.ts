/**
 * AvgPool2d and MaxPool2d (PyTorch's semantics: square window, stride = window unless
 * given, no padding, floor mode). Kernels: kernels/pool2d.wgsl.
 * @module
 */

import { grid, kernel, op, tensor, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

const WORKGROUP = 64;
/** Values per invocation. */
const ELEMENTS = 4;

/** A pooling window. */
export interface Pool2dOptions {
  kernelSize: number;
  /** The window's step; `kernelSize` unless given (PyTorch's default). */
  stride?: number;
}

/**
 * `nn.AvgPool2d(kernelSize, stride)`: [N,C,H,W] -> [N,C,P,Q], P = floor((H - R) / S) + 1,
 * the mean of each R x R window. One dispatch forward, one backward.
 *
 * @example
 * ```ts
 * const pool = avgPool2d({ kernelSize: 2 });
 * pool.outputShape([32, 6, 28, 28]); // [32, 6, 14, 14]
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
  const type = kind === "avg" ? "AvgPool2d" : "MaxPool2d";
  for (const [name, value] of Object.entries({ kernelSize, stride })) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`${type}: ${name} = ${value} is not an integer >= 1`);
    }
  }
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
  return {
    type,
    params: [],
    outputShape,
    build: (ctx) => build(ctx, { kind, kernelSize, stride, outputShape }),
  };
}

// x [N,C,H,W] -> y [N,C,P,Q] (max: and indices [N,C,P,Q] u32); backward dx [N,C,H,W] <- dy
async function build(
  ctx: LayerContext,
  config: {
    kind: "avg" | "max";
    kernelSize: number;
    stride: number;
    outputShape: (input: number[]) => number[];
  },
): Promise<LayerOps> {
  const { rt, x, y, dy, dx } = ctx;
  const [n, c, height, width] = x.shape;
  const [, , outHeight, outWidth] = config.outputShape(x.shape);
  const constants = { WORKGROUP, ELEMENTS };
  const [forwardK, backwardK] = await Promise.all([
    kernel(rt, "pool2d.wgsl", `${config.kind}_forward`, constants),
    kernel(rt, "pool2d.wgsl", `${config.kind}_backward`, constants),
  ]);
  // Fields as in the WGSL struct Params, in its order.
  const u = uniform(rt, `${config.kind}_pool2d`, {
    planes: n * c,
    height,
    width,
    out_height: outHeight,
    out_width: outWidth,
    kernel_size: config.kernelSize,
    stride: config.stride,
  });
  const yGroups = grid(y.size, WORKGROUP * ELEMENTS);
  const xGroups = grid(x.size, WORKGROUP * ELEMENTS);
  if (config.kind === "avg") {
    const forward = [op(rt, forwardK, [x, y, u], yGroups)];
    return {
      train: forward,
      eval: forward,
      backward: dx ? [op(rt, backwardK, [dy, dx, u], xGroups)] : [],
      saved: {},
    };
  }
  // Where each window's max is, written by the forward for the backward (eval writes it too).
  const indices = tensor(rt, y.shape, { dtype: "u32", label: "maxpool indices" });
  const forward = [op(rt, forwardK, [x, y, u, indices], yGroups)];
  return {
    train: forward,
    eval: forward,
    backward: dx ? [op(rt, backwardK, [dy, dx, u, indices], xGroups)] : [],
    saved: { "argmax indices": indices },
  };
}
