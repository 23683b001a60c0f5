/**
 * The CPU wing: kernels tuned for Mesa's llvmpipe (and lavapipe), where a workgroup runs on one
 * CPU thread and an invocation is one SIMD lane, loads set the pace and a dispatch costs about
 * as much as a small kernel. Conv2d (and the table Conv2d, run as a dense one), BatchNorm2d and
 * Linear (with conv2dAsLinear, LeNet-5's C5, where the product is large enough to pay) have
 * tuned ops here (texture mirrors, four images a texel, one invocation per channel, register
 * blocks, tensors handed between a conv and a BatchNorm or an average pool packed), and an
 * AdaptiveAvgPool2d after a BatchNorm2d runs inside its kernels; every other layer is built
 * plain.
 * @module
 */

import type { Layer, LayerContext, LayerOps } from "../layers/layer.ts";
import type { Tier } from "../tier.ts";
import { buildConv2d } from "./conv2d.ts";
import { buildBatchnorm2d } from "./batchnorm2d.ts";
import { buildAdaptiveAvgPool2d } from "./adaptive_avg_pool2d.ts";
import { buildLinear, linearPays } from "./linear.ts";
import { buildConv2dTable } from "./conv2d_table.ts";
import { buildPool2d } from "./pool2d.ts";

/**
 * The tuned builds, by the layer's kernel family; undefined means the plain build. A
 * conv2dAsLinear is of type "Conv2d" but of family "linear": it is built as the Linear it
 * runs as, never as a Conv2d.
 */
const BUILDS: Record<string, (layer: Layer, ctx: LayerContext) => Promise<LayerOps> | undefined> = {
  conv2d: buildConv2d,
  batchnorm2d: buildBatchnorm2d,
  adaptive_avg_pool2d: buildAdaptiveAvgPool2d,
  conv2d_table: buildConv2dTable,
  pool2d: buildPool2d,
  // Small products (the seed's 32 -> 10 at batch 32) stay plain: there the wing's copies
  // cost more than its products save.
  linear: (layer, ctx) => linearPays(layer, ctx) ? buildLinear(layer, ctx) : undefined,
};

/** The CPU tier: the wing's Conv2d, BatchNorm2d, fused pool and Linear, plain for the rest. */
export const CPU_TIER: Tier = {
  name: "cpu",
  build: (layer, ctx) => layer.family ? BUILDS[layer.family]?.(layer, ctx) : undefined,
};
