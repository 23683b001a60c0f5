/**
 * Inference over a whole split in eval mode: the images gathered and normalized on the GPU,
 * the eval forward, and one layer's output copied batch after batch into one result buffer
 * that is read back once at the end. Used by evaluate (logits) and embed (logits or features).
 * @module
 */

import { buildGraph, type Model } from "./models.ts";
import { gatherOp, uploadDataset } from "./data_gpu.ts";
import { createStepState } from "./step_state.ts";
import { idle, numel, record, type Runtime, tensor, upload } from "./runtime.ts";
import { readback } from "./runtime.ts";
import type { Split } from "./train.ts";

const CHUNK_IMAGES = 2000;
const CHUNK_BATCHES = 64;

/** Which output to collect and how to feed the model. */
export interface InferOptions {
  /** The flat parameter buffer's values (the model's layout). */
  params: Float32Array<ArrayBuffer>;
  /** Images per dispatch; results do not depend on it in eval mode. */
  batchSize?: number;
  /** The module whose output to collect (default: the last layer, the logits). */
  layer?: string;
  mean: number;
  std: number;
  /** Called after each submitted chunk with the images done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * The output of `options.layer` for every image of `split`, [N, D] row-major.
 *
 * @example
 * ```ts
 * import { createRuntime } from "./device.ts";
 * import { lenet } from "./models.ts";
 * import { initParams } from "./params.ts";
 * import { random } from "./random.ts";
 * import { forwardSplit } from "./infer.ts";
 *
 * const rt = await createRuntime();
 * const model = lenet();
 * const params = initParams(model.layout, random(0));
 * const test = { images: new Uint8Array(3 * 28 * 28), labels: new Uint8Array(3), count: 3 };
 * const logits = await forwardSplit(rt, model, test, { params, mean: 0.1307, std: 0.3081 });
 * console.log(logits.dim, logits.values.length); // 10 30
 * ```
 */
export async function forwardSplit(
  rt: Runtime,
  model: Model,
  split: Split,
  options: InferOptions,
): Promise<{ values: Float32Array; dim: number }> {
  const layer = options.layer ?? model.layers.at(-1)!.name;
  if (!model.layers.some((l) => l.name === layer)) {
    throw new Error(
      `model ${model.name} has no layer ${layer}; it has ${model.layers.map((l) => l.name)}`,
    );
  }
  const B = Math.min(options.batchSize ?? 500, split.count);
  const params = tensor(rt, [model.layout.size], { label: "params" });
  upload(rt, params, options.params);
  const grads = tensor(rt, [model.layout.trainableSize], { label: "grads (unused)" });
  const dataset = uploadDataset(rt, split.images, split.labels, { label: "split" });
  const order = tensor(rt, [split.count], { dtype: "u32", label: "order" });
  upload(rt, order, Uint32Array.from({ length: split.count }, (_, i) => i));
  const state = await createStepState(rt);
  state.set(rt, { step: 0, batch: 0 });

  const passes = [];
  for (const count of new Set([B, split.count % B].filter((c) => c > 0))) {
    const graph = await buildGraph(rt, model, { batch: count, params, grads });
    const labels = tensor(rt, [count], { dtype: "u32", label: "labels" });
    const gather = await gatherOp(rt, {
      dataset,
      order,
      state: state.tensor,
      x: graph.x,
      labels,
      batchSize: B,
      count,
      mean: options.mean,
      std: options.std,
      pad: model.pad,
    });
    passes.push({
      count,
      output: graph.outputs.get(layer)!,
      ops: [gather, ...graph.eval, state.advanceEval],
    });
  }
  const dim = numel(passes[0].output.shape.slice(1));
  const result = tensor(rt, [split.count, dim], { label: `${layer} outputs` });
  // Chunks of about CHUNK_IMAGES images and at most CHUNK_BATCHES batches a submit, so that
  // progress shows every second or so even at batch 1, and no submit is huge.
  const perSubmit = Math.max(1, Math.min(CHUNK_BATCHES, Math.floor(CHUNK_IMAGES / B)));
  for (let start = 0; start < split.count;) {
    const encoder = rt.device.createCommandEncoder();
    for (let k = 0; k < perSubmit && start < split.count; k++, start += B) {
      const pass = passes.find((p) => p.count === Math.min(B, split.count - start))!;
      record(encoder, pass.ops);
      encoder.copyBufferToBuffer(
        pass.output.buffer,
        pass.output.offset * 4,
        result.buffer,
        start * dim * 4,
        pass.count * dim * 4,
      );
    }
    rt.device.queue.submit([encoder.finish()]);
    if (options.onProgress) {
      await idle(rt);
      options.onProgress(Math.min(start, split.count), split.count);
    }
  }
  return { values: await readback(rt, result), dim };
}
