/**
 * Packed handoffs: a tensor that one of the wing's Conv2d layers and a Conv2d, BatchNorm2d or
 * average pool next to it pass between them (a Conv2d's output and the BatchNorm2d after it,
 * that BatchNorm2d's output and the Conv2d after it, LeNet-5's conv -> pool -> conv, and the
 * gradients of all of them) goes from one kernel to the other packed in groups of four
 * images (kernels/cpu/conv2d.wgsl's N4 layout), in a storage texture that the writer fills
 * and the reader fetches a texel at a time. Without it, each such tensor was written plain,
 * copied to a texture mirror, packed by a dispatch of its own and copied again: the seed's
 * step loses 3 dispatches and 9 copies, LeNet-5's 3 and 6.
 *
 * The lanes of images past the batch: BatchNorm and the pools mask them where they read, and
 * write 0 there in what they hand to a conv (as kernels/cpu/conv2d.wgsl's pack does), because
 * the conv's weight and bias gradients sum over all four images of a group.
 * @module
 */

import type { Runtime, Tensor, TextureBinding } from "../runtime.ts";
import type { Layer } from "../layers/layer.ts";
import type { Pool2dConfig } from "../layers/pool2d.ts";
import { TEXTURE_ROW } from "./texture.ts";

/**
 * The wing's layers that read and write packed tensors: its Conv2d and BatchNorm2d, and the
 * average pools it builds (lib/cpu/pool2d.ts: windows that do not overlap).
 */
function packs(layer?: Layer): boolean {
  if (!layer) return false;
  return layer.family === "conv2d" || layer.family === "batchnorm2d" || wingPool(layer);
}

/** True for the pools the wing builds (lib/cpu/pool2d.ts): average, windows that do not overlap. */
export function wingPool(layer: Layer): boolean {
  const config = layer.config as unknown as Pool2dConfig | undefined;
  return layer.family === "pool2d" && !!config && !config.max && config.stride >= config.kernelSize;
}

/**
 * True when `writer` hands its output (and the reader its gradient back) to `reader` packed:
 * both are built by the wing (the caller's tier is the CPU tier) and read and write packed
 * tensors, and one of them is a conv (two pools or a pool and a BatchNorm keep the plain
 * tensor between them).
 */
export function handsOffPacked(writer?: Layer, reader?: Layer): boolean {
  const conv = writer?.family === "conv2d" || reader?.family === "conv2d";
  return conv && packs(writer) && packs(reader);
}

/** The packed textures of handed-off tensors, shared by their writer and reader. */
const textures = new WeakMap<Tensor, TextureBinding>();

/**
 * The packed texture of `t` [N, ...]: ceil(N / 4) groups of its image's floats, each a texel
 * of four images, at texel i = (i % TEXTURE_ROW, i / TEXTURE_ROW). Made by whichever of the
 * two layers is built first, found by the other.
 */
export function packedTexture(rt: Runtime, t: Tensor): TextureBinding {
  let binding = textures.get(t);
  if (!binding) {
    const texels = Math.ceil(t.shape[0] / 4) * (t.size / t.shape[0]);
    const label = `${t.label} (packed texture)`;
    const texture = rt.device.createTexture({
      size: [Math.min(texels, TEXTURE_ROW), Math.ceil(texels / TEXTURE_ROW)],
      format: "rgba32float",
      usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING,
      label,
    });
    binding = { texture, view: texture.createView({ label }) };
    textures.set(t, binding);
  }
  return binding;
}

/** A one-texel storage texture, bound where a kernel's packed store is compiled out. */
const unused = new WeakMap<GPUDevice, TextureBinding>();

/** The runtime's stand-in for an unused storage-texture binding. */
export function unusedStorageTexture(rt: Runtime): TextureBinding {
  let binding = unused.get(rt.device);
  if (!binding) {
    const label = "unused storage texture";
    const texture = rt.device.createTexture({
      size: [1, 1],
      format: "rgba32float",
      usage: GPUTextureUsage.STORAGE_BINDING,
      label,
    });
    binding = { texture, view: texture.createView({ label }) };
    unused.set(rt.device, binding);
  }
  return binding;
}
