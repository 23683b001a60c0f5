/**
 * AvgPool2d (with its fused activation, windows that do not overlap) in the CPU wing, so that
 * LeNet-5's S2 and S4 take their input from the conv before and hand their output to the conv
 * after packed (lib/cpu/handoff.ts): four images a texel, no pack and no copies between them,
 * and conv1's output stored as texels instead of 150,528 single floats a step. Max pooling
 * and overlapping windows keep the plain build. Kernels: kernels/cpu/pool2d.wgsl, tested
 * against the plain pool (kernels/pool2d.wgsl) in tests/handoff_test.ts.
 * @module
 */

import { grid, op, type Tensor } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "../layers/layer.ts";
import type { Pool2dConfig } from "../layers/pool2d.ts";
import { cpuKernel, textureMirror } from "./texture.ts";
import { handsOffPacked, packedTexture, unusedStorageTexture, wingPool } from "./handoff.ts";

/** Invocations per workgroup (one SIMD vector on llvmpipe). */
const WORKGROUP = 8;

/** The wing's ops for an average pool (see {@linkcode wingPool}), else undefined (plain). */
export function buildPool2d(layer: Layer, ctx: LayerContext): Promise<LayerOps> | undefined {
  return wingPool(layer) ? build(layer, ctx) : undefined;
}

async function build(layer: Layer, ctx: LayerContext): Promise<LayerOps> {
  const config = layer.config as unknown as Pool2dConfig;
  const { rt, x, y, dy } = ctx;
  const [batch, channels, height, width] = x.shape;
  const [, , outHeight, outWidth] = layer.outputShape(x.shape);
  // Handed over packed: x and dx from a conv before, y and dy to a conv after.
  const packedIn = handsOffPacked(ctx.before, layer);
  const packedOut = handsOffPacked(layer, ctx.after);
  const constants = {
    WORKGROUP,
    BATCH: batch,
    CHANNELS: channels,
    HEIGHT: height,
    WIDTH: width,
    OUT_HEIGHT: outHeight,
    OUT_WIDTH: outWidth,
    KERNEL_SIZE: config.kernelSize,
    STRIDE: config.stride,
    ACTIVATION: config.activation,
    PACKED_IN: packedIn ? 1 : 0,
    PACKED_OUT: packedOut ? 1 : 0,
  };
  const [trainK, evalK, backwardK] = await Promise.all([
    cpuKernel(rt, "pool2d.wgsl", "forward", { ...constants, Y_PLAIN: packedOut ? 0 : 1 }),
    cpuKernel(rt, "pool2d.wgsl", "forward", { ...constants, Y_PLAIN: 1 }),
    cpuKernel(rt, "pool2d.wgsl", "backward", constants),
  ]);
  // x and dy: handed over packed, or plain tensors read from their mirrors.
  const input = (t: Tensor, handedOver: boolean) => {
    if (handedOver) return { binding: packedTexture(rt, t), copy: [] };
    const mirror = textureMirror(rt, t);
    return { binding: mirror, copy: [mirror.copy] };
  };
  const xt = input(x, packedIn);
  const dyt = input(dy, packedOut);
  const unused = unusedStorageTexture(rt);
  const y4 = packedOut ? packedTexture(rt, y) : unused;
  const windows = grid(Math.ceil(batch / 4) * channels * outHeight * outWidth, WORKGROUP);
  const forward = (k: typeof trainK) => [...xt.copy, op(rt, k, [xt.binding, y, y4], windows)];
  const train = forward(trainK);
  const backward = ctx.dx
    ? [
      ...dyt.copy,
      op(rt, backwardK, [
        xt.binding,
        dyt.binding,
        ctx.dx,
        packedIn ? packedTexture(rt, ctx.dx) : unused,
      ], windows),
    ]
    : [];
  return { train, eval: packedOut ? forward(evalK) : train, backward, saved: {} };
}
