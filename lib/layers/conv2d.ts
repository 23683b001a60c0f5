/**
 * Conv2d (PyTorch's semantics: square kernel, stride, zero padding, bias): forward, then the
 * backward to the input and to the weight and bias. Kernels: kernels/conv2d.wgsl (the fast,
 * register-blocked ones) and kernels/conv2d_naive.wgsl (the plain loops they are tested
 * against and must beat in bench/conv2d_bench.ts).
 * @module
 */

import {
  grid,
  kernel,
  type Op,
  op,
  type Runtime,
  type Tensor,
  type Uniform,
  uniform,
  view,
} from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

/** Invocations per workgroup. */
const WORKGROUP = 64;
/**
 * backward_weight has few invocations (one per 16x16 block of dw): small workgroups spread
 * them over the CPU's threads (llvmpipe runs a workgroup on one thread).
 */
const WEIGHT_WORKGROUP = 8;
/** Floats of a uniform binding: WebGPU's default limit (64 KiB) = the WGSL arrays' size. */
const UNIFORM_FLOATS = 16384;

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
 * +-1/sqrt(C*R*R). Forward is two dispatches (stage the weights, convolve); backward is one
 * for dx (when a layer below needs it) and one that writes both dweight and dbias.
 * Backward reads the weights its step's forward staged: run train (or eval) first.
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
    build: (ctx) => {
      const [batch, , height, width] = ctx.x.shape;
      const y = outputShape(ctx.x.shape);
      if (ctx.y.shape.join() !== y.join() || ctx.dy.shape.join() !== y.join()) {
        throw new Error(`Conv2d: y [${ctx.y.shape}] and dy [${ctx.dy.shape}] are not [${y}]`);
      }
      const dims: Dims = {
        batch,
        inChannels,
        height,
        width,
        outChannels,
        kernelSize,
        stride,
        padding,
        outHeight: y[2],
        outWidth: y[3],
      };
      return options.kernels === "naive" ? buildNaive(ctx, dims) : buildFast(ctx, dims);
    },
  };
}

/** The sizes of one built convolution. */
interface Dims {
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

/** The kernels' uniform: fields as in the WGSL struct Params, in its order. */
function params(rt: Runtime, d: Dims): Uniform {
  return uniform(rt, "conv2d", {
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
  });
}

/** The smallest power of two of quads (4 channels) that covers n, at most `most`. */
function quadsFor(n: number, most: number): number {
  let quads = 1;
  while (quads * 4 < n && quads < most) quads *= 2;
  return quads;
}

/**
 * The stage buffer of the fast kernels: the weights in forward's order (wf) and in
 * backward_input's order (wb), each in a region of at least 64 KiB so that a uniform binding
 * of that size always fits in it. Zero-filled at creation, so the padding channels read 0.
 * Made here rather than with tensor() because it is also a UNIFORM buffer.
 */
function stageBuffer(rt: Runtime, floats: { wf: number; wb: number }) {
  const region = (n: number) => Math.ceil(Math.max(n, UNIFORM_FLOATS) / 64) * 64;
  const total = region(floats.wf) + region(floats.wb);
  const label = "conv2d staged weights";
  const buffer = rt.device.createBuffer({
    label,
    size: total * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_SRC |
      GPUBufferUsage.COPY_DST,
  });
  const all: Tensor = { buffer, shape: [total], dtype: "f32", offset: 0, size: total, label };
  const wbAt = region(floats.wf);
  return {
    wf: view(all, 0, [region(floats.wf)], "conv2d wf"),
    wb: view(all, wbAt, [region(floats.wb)], "conv2d wb"),
    wfUniform: view(all, 0, [UNIFORM_FLOATS], "conv2d wf (uniform)"),
    wbUniform: view(all, wbAt, [UNIFORM_FLOATS], "conv2d wb (uniform)"),
  };
}

// forward:  x [N,C,H,W], weight [K,C,R,R], bias [K] -> y [N,K,P,Q]
// backward: dy [N,K,P,Q], weight -> dx [N,C,H,W];  dy, x -> dweight [K,C,R,R], dbias [K]
async function buildFast(ctx: LayerContext, d: Dims): Promise<LayerOps> {
  const { rt, x, y, dy, dx, params: p, grads } = ctx;
  const u = params(rt, d);
  const quads = (n: number) => Math.ceil(n / 4);
  const rr = d.kernelSize * d.kernelSize;
  const columns = d.inChannels * rr;
  const wfFloats = columns * quads(d.outChannels) * 4;
  const wbFloats = d.outChannels * rr * quads(d.inChannels) * 4;
  const staged = stageBuffer(rt, { wf: wfFloats, wb: wbFloats });
  // Channels per invocation: up to 32 (8 quads) in forward and backward_input; up to 16 x 16
  // (dw) in backward_weight, whose loads are all storage loads.
  const forwardQuads = quadsFor(d.outChannels, 8);
  const inputQuads = quadsFor(d.inChannels, 8);
  const weightQuads = { K_QUADS: quadsFor(d.outChannels, 4), COL_QUADS: quadsFor(columns, 4) };
  const [stageK, forwardK, inputK, weightK] = await Promise.all([
    kernel(rt, "conv2d.wgsl", "stage_weights", { WORKGROUP }),
    kernel(rt, "conv2d.wgsl", "forward", {
      WORKGROUP,
      QUADS: forwardQuads,
      UNIFORM_WEIGHTS: wfFloats <= UNIFORM_FLOATS ? 1 : 0,
    }),
    kernel(rt, "conv2d.wgsl", "backward_input", {
      WORKGROUP,
      QUADS: inputQuads,
      UNIFORM_WEIGHTS: wbFloats <= UNIFORM_FLOATS ? 1 : 0,
    }),
    kernel(rt, "conv2d.wgsl", "backward_weight", { WORKGROUP: WEIGHT_WORKGROUP, ...weightQuads }),
  ]);

  // Invocations: forward, 4 output pixels x 4*QUADS channels; backward_input, 4 input pixels
  // of one phase (h mod S, w mod S) x 4*QUADS channels; backward_weight, one block of dw.
  const pixelQuads = quads(d.batch * d.outHeight * d.outWidth);
  const forwardCount = pixelQuads * Math.ceil(quads(d.outChannels) / forwardQuads);
  const phasePixels = d.batch * Math.ceil(d.height / d.stride) * Math.ceil(d.width / d.stride);
  const inputCount = quads(phasePixels) * d.stride * d.stride *
    Math.ceil(quads(d.inChannels) / inputQuads);
  const weightCount = Math.ceil(columns / (4 * weightQuads.COL_QUADS)) *
    Math.ceil(d.outChannels / (4 * weightQuads.K_QUADS));

  const stage = op(
    rt,
    stageK,
    [p.weight, staged.wf, staged.wb, u],
    grid(d.outChannels * columns, WORKGROUP),
  );
  const forward = op(
    rt,
    forwardK,
    [x, staged.wfUniform, staged.wf, p.bias, y, u],
    grid(forwardCount, WORKGROUP),
  );
  const backward: Op[] = [];
  if (dx) {
    backward.push(
      op(rt, inputK, [dy, staged.wbUniform, staged.wb, dx, u], grid(inputCount, WORKGROUP)),
    );
  }
  backward.push(
    op(rt, weightK, [x, dy, grads.weight, grads.bias, u], grid(weightCount, WEIGHT_WORKGROUP)),
  );
  return { train: [stage, forward], eval: [stage, forward], backward };
}

// The plain kernels: one invocation per output element.
async function buildNaive(ctx: LayerContext, d: Dims): Promise<LayerOps> {
  const { rt, x, y, dy, dx, params: p, grads } = ctx;
  const u = params(rt, d);
  const [forwardK, inputK, weightK] = await Promise.all([
    kernel(rt, "conv2d_naive.wgsl", "forward", { WORKGROUP }),
    kernel(rt, "conv2d_naive.wgsl", "backward_input", { WORKGROUP }),
    kernel(rt, "conv2d_naive.wgsl", "backward_weight", { WORKGROUP }),
  ]);
  const weights = p.weight.size;
  const forward = op(rt, forwardK, [x, p.weight, p.bias, y, u], grid(y.size, WORKGROUP));
  const backward: Op[] = [];
  if (dx) backward.push(op(rt, inputK, [dy, p.weight, dx, u], grid(dx.size, WORKGROUP)));
  backward.push(
    op(rt, weightK, [x, dy, grads.weight, grads.bias, u], grid(weights + d.outChannels, WORKGROUP)),
  );
  return { train: [forward], eval: [forward], backward };
}
