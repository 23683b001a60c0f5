/**
 * The largest batch a model's graph can be built with on this adapter, for train's advice on
 * a too-large --batch-size: the storage binding size bounds it by arithmetic; what the kernels
 * allocate besides (textures) and dispatch (workgroup counts) is found by building the graph
 * and encoding its ops once (not run), shrinking the batch by the ratio the adapter's error
 * names until both pass.
 * @module
 */

import { buildGraph, type Model } from "../lib/models.ts";
import { record, type Runtime, tensor } from "../lib/runtime.ts";

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
    let message: string;
    try {
      const graph = await buildGraph(rt, model, { batch: b, params, grads });
      rt.device.pushErrorScope("validation");
      const encoder = rt.device.createCommandEncoder();
      record(encoder, [...graph.train, ...graph.backward, ...graph.eval]);
      encoder.finish();
      const error = await rt.device.popErrorScope();
      if (!error) return { batch: b, reason };
      message = error.message;
    } catch (e) {
      message = (e as Error).message;
    }
    const found = overLimit(message);
    if (!found) throw new Error(message);
    reason ??= message;
    b = Math.min(b - 1, Math.floor((b * found.limit) / found.value));
  }
  return { batch: Math.max(0, b), reason };
}

/** The value and the limit an adapter's "too large" error names, or undefined. */
function overLimit(message: string): { value: number; limit: number } | undefined {
  const texture = /value (\d+) exceeds the limit of (\d+)/.exec(message);
  if (texture) return { value: Number(texture[1]), limit: Number(texture[2]) };
  const dispatch = /\(\[(\d+), (\d+), (\d+)\]\) must be less or equal to (\d+)/.exec(message);
  if (dispatch) {
    const value = Math.max(...dispatch.slice(1, 4).map(Number));
    return { value, limit: Number(dispatch[4]) };
  }
  return undefined;
}
