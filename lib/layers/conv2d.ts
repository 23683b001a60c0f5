/**
 * Conv2d (PyTorch's semantics: square kernel, stride, zero padding, bias): forward, then the
 * backward to the input and to the weight and bias. Kernels: kernels/conv2d.wgsl, the plain
 * tier (the CPU wing's tuned ones are lib/cpu/conv2d.ts, tested against these).
 * @module
 */

import { grid, kernel, type Op, op, type Runtime, type Uniform, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

/** Invocations per workgroup (backward_weight: a power of two, for its tree sum). */
const WORKGROUP = 64;

/** What a Conv2d layer is. */
export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  /** 1 unless given. */
  stride?: number;
  /** Zeros around each side of the input; 0 unless given. */
  padding?: number;
}

/** The sizes of one built convolution (the CPU wing builds from the same). */
export interface Conv2dDims {
  batch: number;
  inChannels: number;
  height: number;
  width: number;
  outChannels: number;
  kernelSize: number;
  stride: number;
  padding: number;
  outHeight: number;
  outWidth: number;
}

/**
 * A Conv2d layer: x [N,C,H,W] -> y [N,K,P,Q] with P = floor((H + 2 pad - R) / stride) + 1.
 * Parameters (PyTorch names): `weight` [K,C,R,R] and `bias` [K], both uniform in
 * +-1/sqrt(C*R*R). Forward is one dispatch; backward one for dx (when a layer below needs
 * it) and one that writes dweight and dbias (a workgroup per weight). It saves nothing.
 *
 * @example
 * ```ts
 * const conv = conv2d({ inChannels: 1, outChannels: 16, kernelSize: 4, stride: 2 });
 * conv.outputShape([32, 1, 28, 28]); // [32, 16, 13, 13]
 * ```
 */
export function conv2d(options: Conv2dOptions): Layer {
  const { inChannels, outChannels, kernelSize } = options;
  const stride = options.stride ?? 1;
  const padding = options.padding ?? 0;
  for (const [name, value] of Object.entries({ inChannels, outChannels, kernelSize, stride })) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`Conv2d: ${name} = ${value} is not a positive integer`);
    }
  }
  if (!Number.isInteger(padding) || padding < 0) {
    throw new Error(`Conv2d: padding = ${padding} is not a non-negative integer`);
  }
  const bound = 1 / Math.sqrt(inChannels * kernelSize * kernelSize);
  const outputShape = (input: number[]): number[] => {
    const [n, c, h, w] = input;
    if (input.length !== 4 || c !== inChannels) {
      throw new Error(`Conv2d(${inChannels}, ${outChannels}): input [${input}] is not [N,C,H,W]`);
    }
    const side = (size: number) => Math.floor((size + 2 * padding - kernelSize) / stride) + 1;
    if (side(h) < 1 || side(w) < 1) {
      throw new Error(
        `Conv2d: input [${input}] is smaller than the ${kernelSize}x${kernelSize} kernel`,
      );
    }
    return [n, outChannels, side(h), side(w)];
  };
  const layer: Layer = {
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
    family: "conv2d",
    config: { inChannels, outChannels, kernelSize, stride, padding },
    build: (ctx) => build(ctx, conv2dDims(layer, ctx)),
  };
  return layer;
}

/** The sizes of Conv2d `layer` built for `ctx`; throws when x, y or dy has the wrong shape. */
export function conv2dDims(layer: Layer, ctx: LayerContext): Conv2dDims {
  const [batch, , height, width] = ctx.x.shape;
  const y = layer.outputShape(ctx.x.shape);
  if (ctx.y.shape.join() !== y.join() || ctx.dy.shape.join() !== y.join()) {
    throw new Error(`Conv2d: y [${ctx.y.shape}] and dy [${ctx.dy.shape}] are not [${y}]`);
  }
  const c = layer.config as Required<Conv2dOptions>;
  return {
    batch,
    inChannels: c.inChannels,
    height,
    width,
    outChannels: c.outChannels,
    kernelSize: c.kernelSize,
    stride: c.stride,
    padding: c.padding,
    outHeight: y[2],
    outWidth: y[3],
  };
}

/**
 * The fields of the conv2d kernels' uniform, as in the WGSL struct Params, in its order (the
 * CPU wing's struct appends its own fields to these).
 */
export function conv2dFields(d: Conv2dDims): Record<string, number> {
  return {
    batch: d.batch,
    in_channels: d.inChannels,
    height: d.height,
    width: d.width,
    out_channels: d.outChannels,
    kernel_size: d.kernelSize,
    stride: d.stride,
    padding: d.padding,
    out_height: d.outHeight,
    out_width: d.outWidth,
  };
}

/** The kernels' uniform. */
function params(rt: Runtime, d: Conv2dDims): Uniform {
  return uniform(rt, "conv2d", conv2dFields(d));
}

// forward:  x [N,C,H,W], weight [K,C,R,R], bias [K] -> y [N,K,P,Q]
// backward: dy [N,K,P,Q], weight -> dx [N,C,H,W];  dy, x -> dweight [K,C,R,R], dbias [K]
async function build(ctx: LayerContext, d: Conv2dDims): Promise<LayerOps> {
  const { rt, x, y, dy, dx, params: p, grads } = ctx;
  const u = params(rt, d);
  const [forwardK, inputK, weightK] = await Promise.all([
    kernel(rt, "conv2d.wgsl", "forward", { WORKGROUP }),
    kernel(rt, "conv2d.wgsl", "backward_input", { WORKGROUP }),
    kernel(rt, "conv2d.wgsl", "backward_weight", { WORKGROUP }),
  ]);
  const forward = op(rt, forwardK, [x, p.weight, p.bias, y, u], grid(y.size, WORKGROUP));
  const backward: Op[] = [];
  if (dx) backward.push(op(rt, inputK, [dy, p.weight, dx, u], grid(dx.size, WORKGROUP)));
  // One workgroup per weight and per bias.
  const sums = p.weight.size + d.outChannels;
  backward.push(
    op(rt, weightK, [x, dy, grads.weight, grads.bias, u], grid(sums * WORKGROUP, WORKGROUP)),
  );
  return { train: [forward], eval: [forward], backward, saved: {} };
}
