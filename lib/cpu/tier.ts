/**
 * The CPU wing: kernels tuned for Mesa's llvmpipe (and lavapipe), where a workgroup runs on one
 * CPU thread and an invocation is one SIMD lane, loads set the pace and a dispatch costs about
 * as much as a small kernel. Conv2d and BatchNorm2d have tuned ops here (texture mirrors,
 * four images a texel, one invocation per channel, tensors handed between them packed), and
 * an AdaptiveAvgPool2d after a BatchNorm2d runs inside its kernels; every other layer is built
 * plain.
 * @module
 */

import type { Layer, LayerContext, LayerOps } from "../layers/layer.ts";
import type { Tier } from "../tier.ts";
import { buildConv2d } from "./conv2d.ts";
import { buildBatchnorm2d } from "./batchnorm2d.ts";
import { buildAdaptiveAvgPool2d } from "./adaptive_avg_pool2d.ts";

/** The tuned builds, by the layer's kernel family (a conv2dAsLinear is "Conv2d" too, but not one). */
const BUILDS: Record<
  string,
  (layer: Layer, ctx: LayerContext) => Promise<LayerOps> | undefined
> = {
  conv2d: buildConv2d,
  batchnorm2d: buildBatchnorm2d,
  adaptive_avg_pool2d: buildAdaptiveAvgPool2d,
};

/** The CPU tier: the wing's Conv2d, BatchNorm2d and fused pool, the plain build for the rest. */
export const CPU_TIER: Tier = {
  name: "cpu",
  build: (layer, ctx) => layer.family ? BUILDS[layer.family]?.(layer, ctx) : undefined,
};
