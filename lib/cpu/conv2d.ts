/**
 * Conv2d in the CPU wing: three implicit matrix products, register-blocked, over activations
 * packed in groups of four images and read from texture mirrors (kernels/cpu/conv2d.wgsl says
 * why each choice pays on llvmpipe). Tested against the plain tier's kernels
 * (lib/layers/conv2d.ts) in tests/conv2d_test.ts.
 * @module
 */

import {
  grid,
  type Op,
  op,
  type Runtime,
  type Tensor,
  tensor,
  type Uniform,
  uniform,
  view,
} from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "../layers/layer.ts";
import { type Conv2dDims, conv2dDims, conv2dFields } from "../layers/conv2d.ts";
import { cpuKernel, textureMirror } from "./texture.ts";
import { handsOffPacked, packedTexture, unusedStorageTexture } from "./handoff.ts";

/** Invocations per workgroup of stage_weights, pack and reduce_weight. */
const WORKGROUP = 64;
/**
 * backward_weight has few invocations (one per 16x16 block of dw and slice of the rows of dy):
 * small workgroups spread them over the CPU's threads (llvmpipe runs a workgroup on one).
 */
const WEIGHT_WORKGROUP = 8;
/** backward_weight: invocations to aim for, by cutting the rows of dy into slices. */
const WEIGHT_INVOCATIONS = 64;
/** forward: invocations per workgroup (few invocations, many cores). */
const PIXEL_WORKGROUP = 8;
/** forward: pixels per invocation (each for 4 images). */
const PIXELS = 2;
/**
 * forward: pixels per invocation where it computes at most 2 channel quads (few loads of
 * weights for each texel of x: LeNet-5's conv1 ran 1.1-1.3x faster with 4 than with 2).
 */
const FEW_QUADS_PIXELS = 4;
/**
 * backward_input: groups of four images per workgroup, one an invocation (one SIMD vector
 * on llvmpipe: the workgroup's pixel is the same in all its lanes).
 */
const INPUT_WORKGROUP = 8;
/** Floats of a uniform binding: WebGPU's default limit (64 KiB) = the WGSL arrays' size. */
const UNIFORM_FLOATS = 16384;

/** The sizes of one built convolution, and backward_weight's slices. */
interface Dims extends Conv2dDims {
  /** backward_weight: rows (g, p) of dy per slice (each slice sums a partial dw). */
  sliceRows?: number;
}

/** The kernels' uniform: fields as in the WGSL struct Params, in its order. */
function params(rt: Runtime, d: Dims): Uniform {
  return uniform(rt, "conv2d", { ...conv2dFields(d), slice_rows: d.sliceRows ?? 1 });
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
    all,
    wf: view(all, 0, [region(floats.wf)], "conv2d wf"),
    wb: view(all, wbAt, [region(floats.wb)], "conv2d wb"),
    wfUniform: view(all, 0, [UNIFORM_FLOATS], "conv2d wf (uniform)"),
    wbUniform: view(all, wbAt, [UNIFORM_FLOATS], "conv2d wb (uniform)"),
  };
}

// forward:  x [N,C,H,W], weight [K,C,R,R], bias [K] -> y [N,K,P,Q]
// backward: dy [N,K,P,Q], weight -> dx [N,C,H,W];  dy, x -> dweight [K,C,R,R], dbias [K]
/**
 * The tuned Conv2d ops for `layer` built for `ctx`. Forward is three dispatches (stage the
 * weights, pack x in groups of four images, convolve) and two texture copies; backward packs
 * dy, then one dispatch for dx (when a layer below needs it) and two that write dweight and
 * dbias (partial sums over slices of the batch, then their sum). The backward reads the staged
 * weights and the packed x its step's forward wrote (`saved`).
 *
 * Next to the wing's BatchNorm2d (lib/cpu/handoff.ts), x and dx (a BatchNorm before) or y and
 * dy (a BatchNorm after) are handed over packed: no pack and no copies for them, and the
 * forward or backward_input writes its output packed for the BatchNorm, plain only in eval.
 */
export async function buildConv2d(layer: Layer, ctx: LayerContext): Promise<LayerOps> {
  const d: Dims = conv2dDims(layer, ctx);
  const { rt, x, y, dy, dx, params: p, grads } = ctx;
  const u = params(rt, d);
  const quads = (n: number) => Math.ceil(n / 4);
  const rr = d.kernelSize * d.kernelSize;
  const columns = d.inChannels * rr;
  const wfFloats = columns * quads(d.outChannels) * 4;
  const wbFloats = d.outChannels * rr * quads(d.inChannels) * 4;
  const staged = stageBuffer(rt, { wf: wfFloats, wb: wbFloats });
  // Channels per invocation: up to 32 (8 quads) in forward, 16 in backward_input; up to
  // 16 x 16 (dw) in backward_weight.
  const forwardQuads = quadsFor(d.outChannels, 8);
  const inputQuads = quadsFor(d.inChannels, 4);
  const weightQuads = { K_QUADS: quadsFor(d.outChannels, 4), COL_QUADS: quadsFor(columns, 4) };
  // Handed over packed: x and dx from a BatchNorm before, y and dy to a BatchNorm after.
  const packedIn = handsOffPacked(ctx.before, layer);
  const packedOut = handsOffPacked(layer, ctx.after);
  // The output's stores: plain where someone reads it (always in eval), packed for a handoff.
  const stores = (packed: boolean, plain: boolean) => ({
    STORE_PACKED: packed ? 1 : 0,
    STORE_PLAIN: plain ? 1 : 0,
  });
  // forward: 4 pixels an invocation where it computes few channels, stored as vec4 by
  // forward_runs when they are consecutive in the plane.
  const pixels = forwardQuads <= 2 ? FEW_QUADS_PIXELS : PIXELS;
  const plane = d.outHeight * d.outWidth;
  const forwardEntry = pixels === 4 && plane % 4 === 0 ? "forward_runs" : "forward";
  const forwardConstants = {
    WORKGROUP: PIXEL_WORKGROUP,
    QUADS: forwardQuads,
    PIXELS: pixels,
    UNIFORM_WEIGHTS: wfFloats <= UNIFORM_FLOATS ? 1 : 0,
  };
  const [stageK, forwardK, evalK, inputK, weightK, reduceK] = await Promise.all([
    cpuKernel(rt, "conv2d.wgsl", "stage_weights", { WORKGROUP }),
    cpuKernel(rt, "conv2d.wgsl", forwardEntry, {
      ...forwardConstants,
      ...stores(packedOut, !packedOut),
    }),
    cpuKernel(rt, "conv2d.wgsl", forwardEntry, { ...forwardConstants, ...stores(packedOut, true) }),
    cpuKernel(rt, "conv2d.wgsl", "backward_input", {
      WORKGROUP: INPUT_WORKGROUP,
      QUADS: inputQuads,
      UNIFORM_WEIGHTS: wbFloats <= UNIFORM_FLOATS ? 1 : 0,
      ...stores(packedIn, !packedIn),
    }),
    cpuKernel(rt, "conv2d.wgsl", "backward_weight", {
      WORKGROUP: WEIGHT_WORKGROUP,
      ...weightQuads,
    }),
    cpuKernel(rt, "conv2d.wgsl", "reduce_weight", { WORKGROUP }),
  ]);
  // x and dy packed in groups of four images, as textures (see kernels/conv2d.wgsl).
  const groupCount = Math.ceil(d.batch / 4);
  const handedOver = (t: Tensor) => ({
    texture: packedTexture(rt, t),
    ops: [] as Op[],
    flat: undefined,
  });
  const x4 = packedIn ? handedOver(x) : await packed(rt, x, groupCount);
  const dy4 = packedOut ? handedOver(dy) : await packed(rt, dy, groupCount);
  const unused = unusedStorageTexture(rt);

  // Invocations: forward, 4 images x `pixels` output pixels x 4*QUADS channels;
  // backward_input, 4 images x 4*QUADS channels of one input pixel, INPUT_WORKGROUP groups
  // of images a workgroup; backward_weight, one block of dw per slice of the rows (g, p) of dy4.
  const forwardCount = Math.ceil(plane / pixels) * groupCount *
    Math.ceil(quads(d.outChannels) / forwardQuads);
  const inputCount = d.height * d.width * Math.ceil(groupCount / INPUT_WORKGROUP) *
    INPUT_WORKGROUP * Math.ceil(quads(d.inChannels) / inputQuads);
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
  const forwardBindings = [
    x4.texture,
    staged.wfUniform,
    staged.wf,
    p.bias,
    y,
    u,
    packedOut ? packedTexture(rt, y) : unused,
  ];
  const forward = (k: typeof forwardK) =>
    op(rt, k, forwardBindings, grid(forwardCount, PIXEL_WORKGROUP));
  // x4 is packed by the forward and still holds this step's x in the backward.
  const backward: Op[] = [...dy4.ops];
  if (dx) {
    backward.push(
      op(
        rt,
        inputK,
        [
          dy4.texture,
          staged.wbUniform,
          staged.wb,
          dx,
          u,
          packedIn ? packedTexture(rt, dx) : unused,
        ],
        grid(inputCount, INPUT_WORKGROUP),
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
  const train = [stage, ...x4.ops, forward(forwardK)];
  const evalOps = packedOut ? [stage, ...x4.ops, forward(evalK)] : train;
  const saved: Record<string, Tensor> = { "staged weights": staged.all };
  if (x4.flat) saved["packed x"] = x4.flat;
  return { train, eval: evalOps, backward, saved };
}

/**
 * `t` [N, ...] packed in groups of four images ([G, ...] of vec4, see kernels/conv2d.wgsl) in
 * a texture, and the ops that refresh it after `t` is written: copy t to its mirror, pack,
 * copy the packed tensor to its mirror.
 */
async function packed(rt: Runtime, t: Tensor, groupCount: number) {
  const image = t.size / t.shape[0];
  const aligned = image % 4 === 0;
  const packK = await cpuKernel(rt, "conv2d.wgsl", "pack", { WORKGROUP, ALIGNED: aligned ? 1 : 0 });
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
  return { flat, texture, ops: [source.copy, pack, texture.copy] };
}
