/**
 * Softmax cross-entropy, PyTorch's nn.CrossEntropyLoss() (mean over the batch), fused with
 * its gradient and the correct count in one dispatch. Each step writes its loss and correct
 * count into its own row of a `metrics` tensor on the GPU (the row is the step state's
 * `batch`), so the training loop never reads back per step: it reads the rows of many steps
 * at once when it reports, and can name the exact step whose loss was not finite.
 *
 * A step can also write one row per `group` of consecutive images: an evaluation step over
 * 1,024 images with groups of 32 writes the 32 rows that 32 steps of batch 32 would write,
 * the same numbers (each group's sum is formed exactly as a step of 32 forms it).
 * @module
 */

import {
  kernel,
  type Op,
  op,
  readback,
  type Runtime,
  type Tensor,
  tensor,
  uniform,
  view,
} from "../runtime.ts";

/** What {@linkcode crossEntropy} reads and writes. */
export interface CrossEntropyOptions {
  /** f32 [B, C]. */
  logits: Tensor;
  /** u32 [B], each in 0..C-1 (another value gives a NaN loss). */
  labels: Tensor;
  /** f32 [B, C]: the gradient of the mean loss, written in training; null in evaluation. */
  dlogits: Tensor | null;
  /** f32 [capacity, 2]: row `batch` receives (loss, correct); see {@linkcode createMetrics}. */
  metrics: Tensor;
  /** The step state (lib/step_state.ts): its `batch` picks the metrics row. */
  state: Tensor;
  /**
   * Images per full step of the pass (default B): a step's first metrics row is
   * `batch * batchSize / group`. The last, partial step of a pass has B < batchSize.
   */
  batchSize?: number;
  /**
   * Images per metrics row (default batchSize): each group of `group` consecutive images
   * gets its own row (mean loss, correct), the last group of a step what is left.
   */
  group?: number;
}

/**
 * logits [B,C], labels [B] -> metrics[batch] = (mean loss, correct), dlogits [B,C].
 * With groups: metrics[batch * batchSize / group + g] = (mean loss, correct) of group g.
 *
 * Makes the op of the loss: `forward` when `dlogits` is null (evaluation), else
 * `forward_backward` (training), which also writes dlogits = (softmax(z) - onehot) / B
 * (the gradient of the mean over all B images, whatever the groups).
 *
 * @example
 * ```ts
 * import { createRuntime, submit, tensor, upload } from "../runtime.ts";
 * import { createStepState } from "../step_state.ts";
 * import { createMetrics, crossEntropy, readMetrics } from "./cross_entropy.ts";
 *
 * const rt = await createRuntime();
 * const state = await createStepState(rt);
 * const logits = tensor(rt, [2, 3], { label: "logits" });
 * upload(rt, logits, new Float32Array([2, 0, 0, 0, 0, 2]));
 * const labels = tensor(rt, [2], { dtype: "u32", label: "labels" });
 * upload(rt, labels, new Uint32Array([0, 1]));
 * const dlogits = tensor(rt, [2, 3], { label: "dlogits" });
 * const metrics = createMetrics(rt, 1);
 * const loss = await crossEntropy(rt, { logits, labels, dlogits, metrics, state: state.tensor });
 * submit(rt, [loss]);
 * console.log(await readMetrics(rt, metrics, { from: 0, to: 1 })); // loss 1.2395, correct 1
 * ```
 */
export async function crossEntropy(rt: Runtime, options: CrossEntropyOptions): Promise<Op> {
  const { logits, labels, dlogits, metrics, state } = options;
  if (logits.shape.length !== 2) {
    throw new Error(`cross_entropy: logits is [${logits.shape}], expected [B, C]`);
  }
  const [batch, classes] = logits.shape;
  if (labels.size !== batch || labels.dtype !== "u32") {
    throw new Error(
      `cross_entropy: labels is ${labels.dtype} [${labels.shape}], expected u32 [${batch}]`,
    );
  }
  if (dlogits && dlogits.shape.join() !== logits.shape.join()) {
    throw new Error(`cross_entropy: dlogits is [${dlogits.shape}], expected [${logits.shape}]`);
  }
  if (metrics.shape.length !== 2 || metrics.shape[1] !== 2) {
    throw new Error(`cross_entropy: metrics is [${metrics.shape}], expected [capacity, 2]`);
  }
  const batchSize = options.batchSize ?? batch;
  const group = options.group ?? batchSize;
  if (!Number.isInteger(batchSize) || batchSize < batch) {
    throw new Error(`cross_entropy: batchSize ${batchSize} must be a whole number >= B (${batch})`);
  }
  if (!Number.isInteger(group) || group < 1 || batchSize % group !== 0) {
    throw new Error(`cross_entropy: group ${group} must divide batchSize (${batchSize})`);
  }
  const constants = { WORKGROUP: 64 };
  const params = uniform(rt, "cross_entropy", {
    batch,
    classes,
    group,
    rows_per_step: batchSize / group,
  });
  const bindings = [logits, labels, metrics, state, params];
  const workgroups = Math.ceil(batch / group);
  if (!dlogits) {
    const k = await kernel(rt, "cross_entropy.wgsl", "forward", constants);
    return op(rt, k, bindings, workgroups);
  }
  const k = await kernel(rt, "cross_entropy.wgsl", "forward_backward", constants);
  return op(rt, k, [...bindings, dlogits], workgroups);
}

/**
 * Allocates the metrics tensor f32 [capacity, 2] (loss, correct per step), one row per
 * batch of an epoch or of an evaluation pass.
 */
export function createMetrics(rt: Runtime, capacity: number): Tensor {
  return tensor(rt, [capacity, 2], { label: "metrics" });
}

/** The losses and correct counts of rows `from` to `to` (exclusive) of a metrics tensor. */
export interface MetricsRows {
  loss: Float32Array;
  correct: Float32Array;
}

/**
 * Reads rows [from, to) of a metrics tensor back in one copy (waits for the queue).
 *
 * @example
 * ```ts
 * import { createRuntime } from "../runtime.ts";
 * import { createMetrics, readMetrics } from "./cross_entropy.ts";
 *
 * const rt = await createRuntime();
 * const metrics = createMetrics(rt, 4);
 * const { loss } = await readMetrics(rt, metrics, { from: 0, to: 4 });
 * const bad = loss.findIndex((l) => !Number.isFinite(l)); // -1: every loss is finite
 * ```
 */
export async function readMetrics(
  rt: Runtime,
  metrics: Tensor,
  rows: { from: number; to: number },
): Promise<MetricsRows> {
  const { from, to } = rows;
  if (from < 0 || to > metrics.shape[0] || from >= to) {
    throw new Error(`readMetrics: rows ${from}..${to} of a metrics tensor of ${metrics.shape[0]}`);
  }
  const data = await readback(
    rt,
    view(metrics, metrics.offset + 2 * from, [to - from, 2], "metrics rows"),
  );
  const loss = new Float32Array(to - from), correct = new Float32Array(to - from);
  for (let i = 0; i < to - from; i++) {
    loss[i] = data[2 * i];
    correct[i] = data[2 * i + 1];
  }
  return { loss, correct };
}
