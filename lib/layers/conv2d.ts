/**
 * Conv2d (PyTorch's semantics: square kernel, zero padding, bias): forward, then the
 * backward to the input and to the weight and bias. Kernels: kernels/conv2d.wgsl (the fast,
 * register-blocked ones) and kernels/conv2d_naive.wgsl (the plain loops they are tested
 * against).
 * @module
 */

import { grid, kernel, op, type Op, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

/** Invocations per workgroup, for every entry point. */
const WORKGROUP = 64;
/** Outputs per invocation of the fast kernels: 8 channels x 8 pixels (or 8 columns). */
const BLOCK = 8;

/** What a Conv2d layer is. */
export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  /** 1 unless given. */
  stride?: number;
  /** Zeros around each side of the input; 0 unless given. */
  padding?: number;
  /** "naive": the plain one-output-per-invocation kernels, kept as the reference. */
  kernels?: "fast" | "naive";
}

/**
 * A Conv2d layer: x [N,C,H,W] -> y [N,K,P,Q] with P = floor((H + 2 pad - R) / stride) + 1.
 * Parameters (PyTorch names): `weight` [K,C,R,R] and `bias` [K], both uniform in
 * +-1/sqrt(C*R*R). One dispatch forward; backward is one for dx (when a layer below needs
 * it) and one that writes both the weight and the bias gradient.
 *
 * @example
 * ```ts
 * const conv = conv2d({ inChannels: 1, outChannels: 16, kernelSize: 4, stride: 2 });
 * conv.outputShape([32, 1, 28, 28]); // [32, 16, 13, 13]
 * ```
 */
export function conv2d(options: Conv2dOptions): Layer {
  const { inChannels, outChannels, kernelSize } = options;
  const config = {
    inChannels,
    outChannels,
    kernelSize,
    stride: options.stride ?? 1,
    padding: options.padding ?? 0,
    naive: options.kernels === "naive",
  };
  for (const [name, value] of Object.entries(config)) {
    if (typeof value === "number" && !(Number.isInteger(value) && value >= 0)) {
      throw new Error(`Conv2d: ${name} = ${value} is not a non-negative integer`);
    }
  }
  if (inChannels < 1 || outChannels < 1 || kernelSize < 1 || config.stride < 1) {
    throw new Error(`Conv2d: channels, kernel size and stride must be >= 1`);
  }
  const bound = 1 / Math.sqrt(inChannels * kernelSize * kernelSize);
  const outputShape = (input: number[]): number[] => {
    const [n, c, h, w] = input;
    if (input.length !== 4 || c !== inChannels) {
      throw new Error(`Conv2d(${inChannels}, ${outChannels}): input [${input}] is not [N,C,H,W]`);
    }
    const side = (size: number) =>
      Math.floor((size + 2 * config.padding - kernelSize) / config.stride) + 1;
    if (side(h) < 1 || side(w) < 1) {
      throw new Error(`Conv2d: input [${input}] is smaller than the ${kernelSize}x${kernelSize} kernel`);
    }
    return [n, outChannels, side(h), side(w)];
  };
  return {
    type: "Conv2d",
    params: [
      {
        name: "weight",
        shape: [outChannels, inChannels, kernelSize, kernelSize],
        init: { uniform: bound },
        trainable: true,
      },
      { name: "bias", shape: [outChannels], init: { uniform: bound }, trainable: true },
    ],
    outputShape,
    flops: (input) => {
      const [n, k, p, q] = outputShape(input);
      return 2 * n * k * p * q * inChannels * kernelSize * kernelSize;
    },
    build: (ctx) => build(ctx, { ...config, outputShape }),
  };
}

/**
 * Lanes of backward_weight that split the reduction of one 8x8 block over the N*P rows of
 * dy: as many as keep each lane at least 4 rows, up to the whole workgroup.
 */
function splitFor(rows: number): number {
  let split = 1;
  while (split < WORKGROUP && rows / (split * 2) >= 4) split *= 2;
  return split;
}

// x [N,C,H,W], weight [K,C,R,R], bias [K] -> y [N,K,P,Q]
// dy [N,K,P,Q], weight -> dx [N,C,H,W];  dy, x -> dweight [K,C,R,R], dbias [K]
async function build(
  ctx: LayerContext,
  config: {
    inChannels: number;
    outChannels: number;
    kernelSize: number;
    stride: number;
    padding: number;
    naive: boolean;
    outputShape: (input: number[]) => number[];
  },
): Promise<LayerOps> {
  const { rt, x, y, dy, dx, params, grads } = ctx;
  const [batch, channels, height, width] = x.shape;
  const [, outChannels, outHeight, outWidth] = config.outputShape(x.shape);
  const expected = [batch, outChannels, outHeight, outWidth];
  if (y.shape.join() !== expected.join() || dy.shape.join() !== expected.join()) {
    throw new Error(`Conv2d: y [${y.shape}] and dy [${dy.shape}] are not [${expected}]`);
  }
  const { kernelSize, stride, padding } = config;
  // Fields as in the WGSL struct Params, in its order.
  const u = uniform(rt, "conv2d", {
    batch,
    in_channels: channels,
    height,
    width,
    out_channels: outChannels,
    kernel_size: kernelSize,
    stride,
    padding,
    out_height: outHeight,
    out_width: outWidth,
  });
  const blocks = (n: number) => Math.ceil(n / BLOCK);
  const columns = channels * kernelSize * kernelSize;
  const split = splitFor(batch * outHeight);
  const file = config.naive ? "conv2d_naive.wgsl" : "conv2d.wgsl";
  const [forwardK, inputK, weightK] = await Promise.all([
    kernel(rt, file, "forward", { WORKGROUP }),
    kernel(rt, file, "backward_input", { WORKGROUP }),
    kernel(rt, file, "backward_weight", config.naive ? { WORKGROUP } : { WORKGROUP, SPLIT: split }),
  ]);
  // Invocations of each entry point (backward_weight: 8x8 blocks of SPLIT lanes each).
  const counts = config.naive
    ? {
      forward: grid(y.size, WORKGROUP),
      input: grid(x.size, WORKGROUP),
      weight: grid(outChannels * columns + outChannels, WORKGROUP),
    }
    : {
      forward: grid(blocks(batch * outHeight * outWidth) * blocks(outChannels), WORKGROUP),
      input: grid(
        blocks(batch * Math.ceil(height / stride) * Math.ceil(width / stride)) *
          stride * stride * blocks(channels),
        WORKGROUP,
      ),
      // The bias gradient is one more column of the weight gradient's matrix.
      weight: grid(blocks(columns + 1) * blocks(outChannels), WORKGROUP / split),
    };

  const forward = op(rt, forwardK, [x, params.weight, params.bias, y, u], counts.forward);
  const backward: Op[] = [];
  if (dx) backward.push(op(rt, inputK, [dy, params.weight, dx, u], counts.input));
  backward.push(op(rt, weightK, [x, dy, grads.weight, grads.bias, u], counts.weight));
  return { train: [forward], eval: [forward], backward };
}
