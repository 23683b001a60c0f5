/**
 * Conv2d (PyTorch's semantics: square kernel, zero padding, bias): forward, then the
 * backward to the input and to the weight and bias. Kernels: kernels/conv2d.wgsl (the fast,
 * register-blocked ones) and kernels/conv2d_naive.wgsl (the plain loops they are tested
 * against).
 * @module
 */

import { grid, kernel, op, type Op, type Tensor, type Uniform, uniform, view } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

/** Invocations per workgroup. */
const WORKGROUP = 64;
/**
 * backward_weight has few invocations (one per 16x16 block of dw): small workgroups spread
 * them over the CPU's threads (llvmpipe runs a workgroup on one thread).
 */
const WEIGHT_WORKGROUP = 8;

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

/** The smallest power of two that covers ceil(n / 4) quads, at most `most`. */
function quadsFor(n: number, most: number): number {
  let q = 1;
  while (q * 4 < n && q < most) q *= 2;
  return q;
}

/** Floats of a uniform binding (64 KiB, WebGPU's default limit) = the WGSL arrays' size. */
const UNIFORM_FLOATS = 16384;

/**
 * The stage buffer of the fast kernels: the weights in forward's order (wf) and in
 * backward_input's order (wb), each in a region of at least 64 KiB so that a uniform binding
 * of that size always fits. Zero-filled at creation: the padding channels stay 0.
 */
function stageBuffer(rt: LayerContext["rt"], sizes: { wf: number; wb: number }) {
  const region = (floats: number) => Math.ceil(Math.max(floats, UNIFORM_FLOATS) / 64) * 64;
  const total = region(sizes.wf) + region(sizes.wb);
  const buffer = rt.device.createBuffer({
    label: "conv2d staged weights",
    size: total * 4,
    // UNIFORM on top of tensor()'s usages: read as a uniform buffer when it fits.
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_SRC |
      GPUBufferUsage.COPY_DST,
  });
  const all: Tensor = {
    buffer,
    shape: [total],
    dtype: "f32",
    offset: 0,
    size: total,
    label: "conv2d staged weights",
  };
  const wbAt = region(sizes.wf);
  return {
    wf: view(all, 0, [region(sizes.wf)], "conv2d wf"),
    wb: view(all, wbAt, [region(sizes.wb)], "conv2d wb"),
    wfWindow: view(all, 0, [UNIFORM_FLOATS], "conv2d wf (uniform)"),
    wbWindow: view(all, wbAt, [UNIFORM_FLOATS], "conv2d wb (uniform)"),
  };
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
  if (config.naive) return buildNaive(ctx, u);
  const quads = (n: number) => Math.ceil(n / 4);
  const rr = kernelSize * kernelSize;
  const columns = channels * rr;
  const staged = stageBuffer(rt, {
    wf: columns * quads(outChannels) * 4,
    wb: outChannels * rr * quads(channels) * 4,
  });
  // Channels per invocation: up to 32 (8 quads) in forward and backward_input; up to 16 x 16
  // (dw) in backward_weight, whose every load is a storage load.
  const forwardQuads = quadsFor(outChannels, 8);
  const inputQuads = quadsFor(channels, 8);
  const weightQuads = { K_QUADS: quadsFor(outChannels, 4), COL_QUADS: quadsFor(columns, 4) };
  const [stageK, forwardK, inputK, weightK] = await Promise.all([
    kernel(rt, "conv2d.wgsl", "stage_weights", { WORKGROUP }),
    kernel(rt, "conv2d.wgsl", "forward", {
      WORKGROUP,
      QUADS: forwardQuads,
      UNIFORM_WEIGHTS: columns * quads(outChannels) * 4 <= UNIFORM_FLOATS ? 1 : 0,
    }),
    kernel(rt, "conv2d.wgsl", "backward_input", {
      WORKGROUP,
      QUADS: inputQuads,
      UNIFORM_WEIGHTS: outChannels * rr * quads(channels) * 4 <= UNIFORM_FLOATS ? 1 : 0,
    }),
    kernel(rt, "conv2d.wgsl", "backward_weight", { WORKGROUP: WEIGHT_WORKGROUP, ...weightQuads }),
  ]);
  const pixelQuads = quads(batch * outHeight * outWidth);
  const phasePixelQuads = quads(batch * Math.ceil(height / stride) * Math.ceil(width / stride));

  // stage_weights runs before every forward: backward_input reads what it staged.
  const stage = op(rt, stageK, [params.weight, staged.wf, staged.wb, u], grid(outChannels * columns, WORKGROUP));
  const forward = op(
    rt,
    forwardK,
    [x, staged.wfWindow, staged.wf, params.bias, y, u],
    grid(pixelQuads * Math.ceil(quads(outChannels) / forwardQuads), WORKGROUP),
  );
  const backward: Op[] = [];
  if (dx) {
    const count = phasePixelQuads * stride * stride * Math.ceil(quads(channels) / inputQuads);
    backward.push(
      op(rt, inputK, [dy, staged.wbWindow, staged.wb, dx, u], grid(count, WORKGROUP)),
    );
  }
  const weightCount = Math.ceil(columns / (4 * weightQuads.COL_QUADS)) *
    Math.ceil(outChannels / (4 * weightQuads.K_QUADS));
  backward.push(
    op(rt, weightK, [x, dy, grads.weight, grads.bias, u], grid(weightCount, WEIGHT_WORKGROUP)),
  );
  return { train: [stage, forward], eval: [stage, forward], backward };
}

// The plain kernels: one invocation per output element.
async function buildNaive(ctx: LayerContext, u: Uniform): Promise<LayerOps> {
  const { rt, x, y, dy, dx, params, grads } = ctx;
  const [outChannels, channels, kernelSize] = params.weight.shape;
  const [forwardK, inputK, weightK] = await Promise.all([
    kernel(rt, "conv2d_naive.wgsl", "forward", { WORKGROUP }),
    kernel(rt, "conv2d_naive.wgsl", "backward_input", { WORKGROUP }),
    kernel(rt, "conv2d_naive.wgsl", "backward_weight", { WORKGROUP }),
  ]);
  const weights = outChannels * channels * kernelSize * kernelSize;
  const forward = op(rt, forwardK, [x, params.weight, params.bias, y, u], grid(y.size, WORKGROUP));
  const backward: Op[] = [];
  if (dx) backward.push(op(rt, inputK, [dy, params.weight, dx, u], grid(dx.size, WORKGROUP)));
  backward.push(
    op(rt, weightK, [x, dy, grads.weight, grads.bias, u], grid(weights + outChannels, WORKGROUP)),
  );
  return { train: [forward], eval: [forward], backward };
}
