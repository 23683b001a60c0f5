/**
 * Kernel tiers: which kernels a runtime builds its layers with, chosen once per runtime.
 * The plain tier is every layer's own `build` (kernels/*.wgsl: one output per invocation or a
 * workgroup reduction, storage buffers only), the default on every adapter and the reference.
 * Another tier (the CPU wing, lib/cpu/) supplies its own build for the layers it has tuned
 * kernels for and leaves the rest to the plain one. This module imports no tier but plain.
 * @module
 */

import type { Layer, LayerContext, LayerOps } from "./layers/layer.ts";

/** The tiers there are: "plain" (the spine) and "cpu" (tuned for Mesa's llvmpipe). */
export type TierName = "plain" | "cpu";

/** A tier: a name, and its own build for some layers. */
export interface Tier {
  name: TierName;
  /**
   * The tier's ops for `layer` (known by its `family` and `config`), or undefined to use the
   * layer's own (plain) build.
   */
  build?(layer: Layer, ctx: LayerContext): Promise<LayerOps> | undefined;
}

/** The plain tier: every layer's own build. */
export const PLAIN_TIER: Tier = { name: "plain" };

/** Builds `layer`'s ops with `tier`'s kernels where it has some, else with the layer's own. */
export function buildLayer(tier: Tier, layer: Layer, ctx: LayerContext): Promise<LayerOps> {
  return tier.build?.(layer, ctx) ?? layer.build(ctx);
}
