/**
 * The largest batch a model's graph can be built with on this adapter, for train's advice on
 * a too-large --batch-size: the storage binding size bounds it by arithmetic, and what the
 * kernels allocate besides (textures) is found by building the graph and shrinking the batch
 * by the ratio the adapter's error names, until it builds.
 * @module
 */

import { buildGraph, type Model } from "../lib/models.ts";
import { type Runtime, tensor } from "../lib/runtime.ts";

/**
 * `batch` itself when it fits; else the largest size found that builds, and why `batch` does
 * not (the first limit met).
 */
export async function largestBatch(
  rt: Runtime,
  model: Model,
  batch: number,
): Promise<{ batch: number; reason?: string }> {
  let b = batch, reason: string | undefined;
  const limit = rt.device.limits.maxStorageBufferBindingSize;
  let shape = [batch, ...model.input];
  for (const { name, layer } of model.layers) {
    shape = layer.outputShape(shape);
    const bytes = shape.reduce((a, c) => a * c, 4);
    if (bytes > limit) {
      reason ??= `${name}'s output takes ${bytes} bytes, the adapter binds at most ${limit}`;
      b = Math.min(b, Math.floor((batch * limit) / bytes));
    }
  }
  const params = tensor(rt, [model.layout.size], { label: "params (batch check)" });
  const grads = tensor(rt, [model.layout.size], { label: "grads (batch check)" });
  for (let attempt = 0; attempt < 8 && b >= 1; attempt++) {
    try {
      await buildGraph(rt, model, { batch: b, params, grads });
      return { batch: b, reason };
    } catch (e) {
      const message = (e as Error).message;
      const found = /value (\d+) exceeds the limit of (\d+)/.exec(message);
      if (!found) throw e;
      reason ??= message;
      b = Math.min(b - 1, Math.floor((b * Number(found[2])) / Number(found[1])));
    }
  }
  return { batch: Math.max(0, b), reason };
}
