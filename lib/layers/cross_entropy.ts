/**
 * Softmax cross-entropy, PyTorch's nn.CrossEntropyLoss() (mean over the batch), fused with
 * its gradient in one dispatch. Each image writes its own loss and correct flag into its row
 * of a `metrics` tensor on the GPU, at its place in the pass (the step state's `batch` times
 * the images of a full step, plus its index in the step), so the training loop never reads
 * back per step: it reads the rows of many steps at once when it reports, and forms the
 * seed's per-batch means from them (batchFigures in lib/train.ts). The rows are the
 * same whatever the step's batch: an evaluation step of 1,024 images writes the rows 32 steps
 * of 32 would write.
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

/** Invocations per workgroup: one image each. */
const WORKGROUP = 64;

/** What {@linkcode crossEntropy} reads and writes. */
export interface CrossEntropyOptions {
  /** f32 [B, C]. */
  logits: Tensor;
  /** u32 [B], each in 0..C-1 (another value gives a NaN loss). */
  labels: Tensor;
  /** f32 [B, C]: the gradient of the mean loss, written in training; null in evaluation. */
  dlogits: Tensor | null;
  /** f32 [capacity, 2]: one row (loss, correct) per image of a pass; see {@linkcode createMetrics}. */
  metrics: Tensor;
  /** The step state (lib/step_state.ts): its `batch` places the step's rows. */
  state: Tensor;
  /**
   * Images per full step of the pass (default B): image n of a step writes row
   * `batch * batchSize + n`. The last, partial step of a pass has B < batchSize.
   */
  batchSize?: number;
}

/**
 * logits [B,C], labels [B] -> metrics[batch * batchSize + n] = (loss[n], correct[n]),
 * dlogits [B,C].
 *
 * Makes the op of the loss: `forward` when `dlogits` is null (evaluation), else
 * `forward_backward` (training), which also writes dlogits = (softmax(z) - onehot) / B
 * (the gradient of the mean over the B images of the step).
 *
 * @example
 * ```ts
 * import { createRuntime } from "../device.ts";
 * import { submit, tensor, upload } from "../runtime.ts";
 * import { createStepState } from "../step_state.ts";
 *
 * const rt = await createRuntime();
 * const state = await createStepState(rt);
 * const logits = tensor(rt, [2, 3]), labels = tensor(rt, [2], { dtype: "u32" });
 * upload(rt, logits, new Float32Array([2, 0, 0, 0, 1, 3]));
 * upload(rt, labels, new Uint32Array([0, 1]));
 * const dlogits = tensor(rt, [2, 3]), metrics = createMetrics(rt, 2);
 * submit(rt, [await crossEntropy(rt, { logits, labels, dlogits, metrics, state: state.tensor })]);
 * const rows = await readMetrics(rt, metrics, { from: 0, to: 2 });
 * console.log(rows.loss, rows.correct); // [0.2395, 2.1698], [1, 0]
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
  if (!Number.isInteger(batchSize) || batchSize < batch) {
    throw new Error(`cross_entropy: batchSize ${batchSize} must be a whole number >= B (${batch})`);
  }
  const params = uniform(rt, "cross_entropy", { batch, classes, step_images: batchSize });
  const bindings = [logits, labels, metrics, state, params];
  const workgroups = Math.ceil(batch / WORKGROUP);
  const entry = dlogits ? "forward_backward" : "forward";
  const k = await kernel(rt, "cross_entropy.wgsl", entry, { WORKGROUP });
  return op(rt, k, dlogits ? [...bindings, dlogits] : bindings, workgroups);
}

/**
 * Allocates the metrics tensor f32 [capacity, 2], one row (loss, correct) per image of an
 * epoch or of an evaluation pass.
 */
export function createMetrics(rt: Runtime, capacity: number): Tensor {
  return tensor(rt, [capacity, 2], { label: "metrics" });
}

/** The losses and correct flags of rows `from` to `to` (exclusive) of a metrics tensor. */
export interface MetricsRows {
  /** Each image's loss. */
  loss: Float32Array;
  /** 1 where the image's first argmax is its label, else 0. */
  correct: Uint8Array;
}

/**
 * Reads rows [from, to) of a metrics tensor back in one copy (waits for the queue).
 *
 * @example
 * ```ts
 * import { createRuntime } from "../device.ts";
 *
 * const rt = await createRuntime();
 * const metrics = createMetrics(rt, 100);
 * const { loss } = await readMetrics(rt, metrics, { from: 0, to: 10 });
 * const bad = loss.findIndex((l) => !Number.isFinite(l)); // -1: all zeros so far
 * ```
 */
export async function readMetrics(
  rt: Runtime,
  metrics: Tensor,
  rows: { from: number; to: number },
): Promise<MetricsRows> {
  const { from, to } = rows;
  if (
    !Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > metrics.shape[0] ||
    from >= to
  ) {
    throw new Error(`readMetrics: rows ${from}..${to} of a metrics tensor of ${metrics.shape[0]}`);
  }
  const data = await readback(
    rt,
    view(metrics, metrics.offset + 2 * from, [to - from, 2], "metrics rows"),
  );
  const loss = new Float32Array(to - from), correct = new Uint8Array(to - from);
  for (let i = 0; i < to - from; i++) {
    loss[i] = data[2 * i];
    correct[i] = data[2 * i + 1];
  }
  return { loss, correct };
}
