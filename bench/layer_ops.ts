/**
 * The layer harness of the benchmarks: a layer's ops over fresh zero-filled tensors.
 * @module
 */

import { type Runtime, tensor } from "../lib/runtime.ts";
import type { Layer, LayerOps } from "../lib/layers/layer.ts";
import { buildLayer, type Tier } from "../lib/tier.ts";

/**
 * Builds `layer` for input `shape` with `tier`'s kernels (the runtime's unless given), over
 * zero-filled tensors; `dx: false` builds it as a first layer (no gradient to the input);
 * `before` and `after` are the layers next to it, as a model would have them (a tier may hand
 * tensors between its own layers in a form of its own).
 */
export async function layerOps(
  rt: Runtime,
  layer: Layer,
  shape: number[],
  options: { dx?: boolean; tier?: Tier; before?: Layer; after?: Layer } = {},
): Promise<LayerOps> {
  const out = layer.outputShape(shape);
  const params = Object.fromEntries(layer.params.map((p) => [p.name, tensor(rt, p.shape)]));
  const grads = Object.fromEntries(
    layer.params.filter((p) => p.trainable).map((p) => [p.name, tensor(rt, p.shape)]),
  );
  const [x, y, dy] = [shape, out, out].map((s) => tensor(rt, s));
  const dx = options.dx ?? true ? tensor(rt, shape) : null;
  const { before, after } = options;
  const ctx = { rt, x, y, dy, dx, params, grads, before, after };
  return await buildLayer(options.tier ?? rt.tier, layer, ctx);
}
