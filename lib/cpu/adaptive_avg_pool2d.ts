/**
 * AdaptiveAvgPool2d in the CPU wing: after the wing's BatchNorm2d, the pool runs inside the
 * BatchNorm's kernels (kernels/cpu/batchnorm2d.wgsl, POOL), which the BatchNorm's build made
 * for this layer's tensors; anywhere else, the plain build.
 * @module
 */

import type { Layer, LayerContext, LayerOps } from "../layers/layer.ts";
import { fusedPool } from "./batchnorm2d.ts";

/** The fused ops when a wing BatchNorm2d comes before, else undefined (the plain build). */
export function buildAdaptiveAvgPool2d(
  _layer: Layer,
  ctx: LayerContext,
): Promise<LayerOps> | undefined {
  const ops = fusedPool(ctx);
  return ops && Promise.resolve(ops);
}
