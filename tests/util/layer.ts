/**
 * The layer harness of the tests: a layer built over fresh tensors, its parameters and
 * gradients laid out as a model lays them out.
 * @module
 */

import { numel, type Runtime, type Tensor, tensor, view } from "../../lib/runtime.ts";
import type { Layer, LayerOps } from "../../lib/layers/layer.ts";
import { buildLayer, type Tier } from "../../lib/tier.ts";

/** A built layer and the tensors it reads and writes. */
export interface LayerHarness {
  rt: Runtime;
  x: Tensor;
  y: Tensor;
  dy: Tensor;
  dx: Tensor | null;
  /** Views into one flat parameter buffer, the first at element 64. */
  params: Record<string, Tensor>;
  /** Views into one flat gradient buffer (trainable parameters only), likewise. */
  grads: Record<string, Tensor>;
  ops: LayerOps;
}

/**
 * Builds `layer` for input `shape` with `tier`'s kernels (the runtime's unless given).
 * Parameters and gradients are views into one flat buffer each, like the model's, and the
 * first view starts at element 64, so that a kernel indexing from the buffer's start instead
 * of the view's fails. `dx: false` builds it as a first layer (no gradient to the input).
 */
export async function layerHarness(
  rt: Runtime,
  layer: Layer,
  shape: number[],
  options: { dx?: boolean; tier?: Tier } = {},
): Promise<LayerHarness> {
  const flat = (trainableOnly: boolean, label: string) => {
    const specs = layer.params.filter((p) => p.trainable || !trainableOnly);
    const offsets: number[] = [];
    let end = 64;
    for (const p of specs) {
      offsets.push(end);
      end += Math.ceil(numel(p.shape) / 64) * 64;
    }
    const buffer = tensor(rt, [end], { label });
    return Object.fromEntries(
      specs.map((p, i) => [p.name, view(buffer, offsets[i], p.shape, p.name)]),
    );
  };
  const out = layer.outputShape(shape);
  const h: Omit<LayerHarness, "ops"> = {
    rt,
    x: tensor(rt, shape, { label: "x" }),
    y: tensor(rt, out, { label: "y" }),
    dy: tensor(rt, out, { label: "dy" }),
    dx: options.dx ?? true ? tensor(rt, shape, { label: "dx" }) : null,
    params: flat(false, "params"),
    grads: flat(true, "grads"),
  };
  const ops = await buildLayer(options.tier ?? rt.tier, layer, h);
  return { ...h, ops };
}
