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
  tensor,
  textureMirror,
  type Uniform,
  uniform,
  view,
} from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

/** Invocations per workgroup. */
const WORKGROUP = 64;
/**
 * backward_weight has few invocations (one per 16x16 block of dw and slice of the rows of dy):
 * small workgroups spread them over the CPU's threads (llvmpipe runs a workgroup on one).
 */
const WEIGHT_WORKGROUP = 8;
/** backward_weight: invocations to aim for, by cutting the rows of dy into slices. */
const WEIGHT_INVOCATIONS = 64;
/** forward and backward_input: invocations per workgroup (few invocations, many cores). */
const PIXEL_WORKGROUP = 8;
/** forward and backward_input: pixels per invocation (each for 4 images). */
const PIXELS = 2;
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
 * +-1/sqrt(C*R*R). Forward is three dispatches (stage the weights, pack x in groups of four
 * images, convolve) and two texture copies; backward packs dy, then one dispatch for dx (when
 * a layer below needs it) and two that write dweight and dbias (partial sums over slices of
 * the batch, then their sum). Backward reads the weights and the packed x of its step's
 * forward: run train (or eval) first.
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
  /** backward_weight: rows (g, p) of dy per slice (each slice sums a partial dw). */
  sliceRows?: number;
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
    slice_rows: d.sliceRows ?? 1,
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
  // (dw) in backward_weight.
  const forwardQuads = quadsFor(d.outChannels, 8);
  const inputQuads = quadsFor(d.inChannels, 8);
  const weightQuads = { K_QUADS: quadsFor(d.outChannels, 4), COL_QUADS: quadsFor(columns, 4) };
  const [stageK, forwardK, inputK, weightK, reduceK] = await Promise.all([
    kernel(rt, "conv2d.wgsl", "stage_weights", { WORKGROUP }),
    kernel(rt, "conv2d.wgsl", "forward", {
      WORKGROUP: PIXEL_WORKGROUP,
      QUADS: forwardQuads,
      PIXELS,
      UNIFORM_WEIGHTS: wfFloats <= UNIFORM_FLOATS ? 1 : 0,
    }),
    kernel(rt, "conv2d.wgsl", "backward_input", {
      WORKGROUP: PIXEL_WORKGROUP,
      QUADS: inputQuads,
      PIXELS,
      UNIFORM_WEIGHTS: wbFloats <= UNIFORM_FLOATS ? 1 : 0,
    }),
    kernel(rt, "conv2d.wgsl", "backward_weight", { WORKGROUP: WEIGHT_WORKGROUP, ...weightQuads }),
    kernel(rt, "conv2d.wgsl", "reduce_weight", { WORKGROUP }),
  ]);
  // x and dy packed in groups of four images, as textures (see kernels/conv2d.wgsl).
  const groupCount = Math.ceil(d.batch / 4);
  const x4 = await packed(rt, x, groupCount);
  const dy4 = await packed(rt, dy, groupCount);

  // Invocations: forward, 4 images x PIXELS output pixels x 4*QUADS channels;
  // backward_input, 4 images x PIXELS input pixels of one phase (h mod S, w mod S) x 4*QUADS
  // channels; backward_weight, one block of dw per slice of the rows (g, p) of dy4.
  const pairs = (pixels: number) => Math.ceil(pixels / PIXELS);
  const forwardCount = pairs(d.outHeight * d.outWidth) * groupCount *
    Math.ceil(quads(d.outChannels) / forwardQuads);
  const phasePixels = Math.ceil(d.height / d.stride) * Math.ceil(d.width / d.stride);
  const inputCount = pairs(phasePixels) * d.stride * d.stride * groupCount *
    Math.ceil(quads(d.inChannels) / inputQuads);
  const weightBlocks = Math.ceil(columns / (4 * weightQuads.COL_QUADS)) *
    Math.ceil(d.outChannels / (4 * weightQuads.K_QUADS));
  // Slices: enough that backward_weight has about WEIGHT_INVOCATIONS invocations.
  const rows = groupCount * d.outHeight;
  const sliceRows = Math.ceil(rows / Math.min(rows, Math.ceil(WEIGHT_INVOCATIONS / weightBlocks)));
  const slices = Math.ceil(rows / sliceRows);
  const partRow = d.outChannels * columns + d.outChannels;
  const part = tensor(rt, [slices, partRow], { label: "conv2d dw parts" });
  const weightU = params(rt, { ...d, sliceRows });

  const stage = op(
    rt,
    stageK,
    [p.weight, staged.wf, staged.wb, u],
    grid(d.outChannels * columns, WORKGROUP),
  );
  const forward = op(
    rt,
    forwardK,
    [x4.texture, staged.wfUniform, staged.wf, p.bias, y, u],
    grid(forwardCount, PIXEL_WORKGROUP),
  );
  // x4 is packed by the forward and still holds this step's x in the backward.
  const backward: Op[] = [...dy4.ops];
  if (dx) {
    backward.push(
      op(
        rt,
        inputK,
        [dy4.texture, staged.wbUniform, staged.wb, dx, u],
        grid(inputCount, PIXEL_WORKGROUP),
      ),
    );
  }
  backward.push(
    op(
      rt,
      weightK,
      [x4.texture, dy4.texture, part, weightU],
      grid(weightBlocks * slices, WEIGHT_WORKGROUP),
    ),
    op(rt, reduceK, [part, grads.weight, grads.bias, weightU], grid(partRow, WORKGROUP)),
  );
  const train = [stage, ...x4.ops, forward];
  return { train, eval: train, backward };
}

/**
 * `t` [N, ...] packed in groups of four images ([G, ...] of vec4, see kernels/conv2d.wgsl) in
 * a texture, and the ops that refresh it after `t` is written: copy t to its mirror, pack,
 * copy the packed tensor to its mirror.
 */
async function packed(rt: Runtime, t: Tensor, groupCount: number) {
  const image = t.size / t.shape[0];
  const aligned = image % 4 === 0;
  const packK = await kernel(rt, "conv2d.wgsl", "pack", { WORKGROUP, ALIGNED: aligned ? 1 : 0 });
  const source = textureMirror(rt, t);
  const flat = tensor(rt, [groupCount, image, 4], { label: `${t.label} packed` });
  const texture = textureMirror(rt, flat);
  const u = uniform(rt, "conv2d pack", { batch: t.shape[0], image });
  const pack = op(
    rt,
    packK,
    [source, flat, u],
    grid(groupCount * Math.ceil(image / 4), WORKGROUP),
  );
  return { texture, ops: [source.copy, pack, texture.copy] };
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
