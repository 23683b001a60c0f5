/**
 * Texture mirrors, the CPU wing's cheap loads: a read-only copy of a tensor's floats in an
 * rgba32float texture. On llvmpipe a kernel reads a texel for about a sixth of what four
 * storage-buffer floats cost (a storage load is a loop over the SIMD lanes with a bounds check
 * each; a texel fetch is one gather), so the wing's kernels read an activation they read many
 * times from its mirror. On a GPU this buys nothing, which is why the plain tier has none.
 * @module
 */

import { type CopyOp, type Kernel, kernel, type Runtime, type Tensor } from "../runtime.ts";

/**
 * Texels in one row of a texture mirror (16 KiB: a multiple of the 256 bytes a copy's
 * bytesPerRow must be). The wing's kernels get it as their override TEXTURE_ROW.
 */
export const TEXTURE_ROW = 1024;

/** The texture mirror of a tensor: texel i holds floats 4i..4i+3, at (i % ROW, i / ROW). */
export interface TextureMirror {
  texture: GPUTexture;
  view: GPUTextureView;
  /** The op that copies the tensor into the texture: record it after the tensor is written. */
  copy: CopyOp;
}

/**
 * Makes the texture mirror of `t` (any tensor whose first float starts a 16-byte texel; a
 * partial last texel is copied whole, and tensor() rounds buffers to whole texels).
 *
 * @example
 * ```ts
 * import { requestRuntime, tensor } from "../runtime.ts";
 * import { textureMirror } from "./texture.ts";
 *
 * const rt = await requestRuntime("auto");
 * const x = tensor(rt, [32, 16, 13, 13], { label: "x" });
 * const xt = textureMirror(rt, x); // record xt.copy after x is written, then bind xt
 * ```
 */
export function textureMirror(rt: Runtime, t: Tensor): TextureMirror {
  const texels = Math.max(1, Math.ceil(t.size / 4));
  if (t.offset % 4 !== 0 || t.offset * 4 + texels * 16 > t.buffer.size) {
    throw new Error(`texture mirror of ${t.label}: it must start and end on whole texels`);
  }
  const width = Math.min(texels, TEXTURE_ROW);
  const rows = Math.ceil(texels / TEXTURE_ROW);
  const label = `${t.label} (texture)`;
  const texture = rt.device.createTexture({
    size: [width, rows],
    format: "rgba32float",
    usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
    label,
  });
  // Two copies: the whole rows, then the last partial row (a one-row copy needs no
  // bytesPerRow), so that the buffer need not reach the end of the texture's last row.
  const whole = Math.floor(texels / TEXTURE_ROW), rest = texels % TEXTURE_ROW;
  const copy: CopyOp = {
    label: `copy ${label}`,
    encode: (encoder) => {
      if (whole > 0) {
        encoder.copyBufferToTexture(
          { buffer: t.buffer, offset: t.offset * 4, bytesPerRow: TEXTURE_ROW * 16 },
          { texture },
          [TEXTURE_ROW, whole],
        );
      }
      if (rest > 0) {
        encoder.copyBufferToTexture(
          { buffer: t.buffer, offset: t.offset * 4 + whole * TEXTURE_ROW * 16 },
          { texture, origin: [0, whole] },
          [rest, 1],
        );
      }
    },
  };
  return { texture, view: texture.createView({ label }), copy };
}

/**
 * kernel() for the wing's kernels/cpu/`file`: the same cache, with TEXTURE_ROW added to the
 * override constants (the kernels declare it without a default, so a missing one fails).
 */
export function cpuKernel(
  rt: Runtime,
  file: string,
  entry: string,
  constants: Record<string, number> = {},
): Promise<Kernel> {
  return kernel(rt, `cpu/${file}`, entry, { ...constants, TEXTURE_ROW });
}
