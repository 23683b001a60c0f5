/**
 * The dataset on the GPU: all images uploaded once as bytes (4 pixels a u32), and the op
 * that gathers the current batch of the epoch's order and normalizes it, so that no image
 * crosses the bus during training.
 * @module
 */

import {
  grid,
  kernel,
  type Op,
  op,
  type Runtime,
  type Tensor,
  tensor,
  uniform,
} from "./runtime.ts";

/** The side of an MNIST (and Fashion-MNIST) image in pixels: images are 28x28. */
export const IMAGE_SIDE = 28;
/** Pixels of one image: 28 * 28 = 784. */
export const IMAGE_PIXELS = IMAGE_SIDE * IMAGE_SIDE;

/** A dataset uploaded to the GPU. */
export interface GpuDataset {
  /** The pixels, u8 packed 4 per u32 (little-endian: pixel 4k is the low byte of word k). */
  images: Tensor;
  /** The labels, one per u32: u32 [count]. */
  labels: Tensor;
  /** Number of images. */
  count: number;
  height: number;
  width: number;
}

/**
 * Uploads images u8 [N, height, width] and labels u8 [N] once.
 *
 * @example
 * ```ts
 * import { requestRuntime } from "./runtime.ts";
 *
 * const rt = await requestRuntime("auto");
 * const images = new Uint8Array(2 * IMAGE_PIXELS), labels = Uint8Array.of(7, 2);
 * const train = uploadDataset(rt, images, labels, { label: "mnist train" });
 * console.log(train.count); // 2
 * ```
 */
export function uploadDataset(
  rt: Runtime,
  images: Uint8Array,
  labels: Uint8Array,
  options: { label?: string; height?: number; width?: number } = {},
): GpuDataset {
  const { label = "dataset", height = IMAGE_SIDE, width = IMAGE_SIDE } = options;
  const count = labels.length;
  if (images.length !== count * height * width) {
    throw new Error(
      `${label}: ${images.length} pixels for ${count} labels of ${height}x${width} images`,
    );
  }
  // Copy into a buffer whose length is a whole number of words (the input may be a view).
  const words = new Uint32Array(Math.ceil(images.length / 4));
  new Uint8Array(words.buffer).set(images);
  const imageTensor = tensor(rt, [words.length], { dtype: "u32", label: `${label} images` });
  rt.device.queue.writeBuffer(imageTensor.buffer, 0, words);
  const labelTensor = tensor(rt, [count], { dtype: "u32", label: `${label} labels` });
  rt.device.queue.writeBuffer(labelTensor.buffer, 0, Uint32Array.from(labels));
  return { images: imageTensor, labels: labelTensor, count, height, width };
}

/** What {@linkcode gatherOp} reads and writes. */
export interface GatherOptions {
  dataset: GpuDataset;
  /** u32 [N]: the epoch's permutation of the dataset (the identity for evaluation). */
  order: Tensor;
  /** The step state: its `batch` picks the rows of `order` (see lib/step_state.ts). */
  state: Tensor;
  /** Output f32 [count, 1, height + 2 pad, width + 2 pad]. */
  x: Tensor;
  /** Output u32 [count]. */
  labels: Tensor;
  /** Images per batch of the epoch: batch b starts at order[b * batchSize]. */
  batchSize: number;
  /** Images to gather (default batchSize); less for the last partial batch of an epoch. */
  count?: number;
  /** Normalization: x = (pixel / 255 - mean) / std. */
  mean: number;
  std: number;
  /** Border of zeros around each image, after normalization (default 0). */
  pad?: number;
}

/**
 * Makes the op that writes x[i] = normalize(images[order[batch * batchSize + i]]) and
 * labels[i] for i < count, with `batch` read from the step state when the op runs.
 * The `pad`-wide border is 0.0, as Conv2d's zero padding of the normalized input.
 *
 * @example
 * ```ts
 * import { readbackU32, requestRuntime, submit, tensor, upload } from "./runtime.ts";
 * import { createStepState } from "./step_state.ts";
 *
 * const rt = await requestRuntime("auto");
 * const dataset = uploadDataset(rt, new Uint8Array(4 * IMAGE_PIXELS), Uint8Array.of(0, 1, 2, 3));
 * const order = tensor(rt, [4], { dtype: "u32", label: "order" });
 * upload(rt, order, Uint32Array.of(3, 2, 1, 0));
 * const state = await createStepState(rt);
 * const x = tensor(rt, [2, 1, IMAGE_SIDE, IMAGE_SIDE], { label: "x" });
 * const labels = tensor(rt, [2], { dtype: "u32", label: "labels" });
 * const gather = await gatherOp(rt, {
 *   dataset, order, state: state.tensor, x, labels, batchSize: 2, mean: 0.1307, std: 0.3081,
 * });
 * submit(rt, [gather]);
 * console.log(await readbackU32(rt, labels)); // [3, 2]: batch 0 of the order
 * ```
 */
export async function gatherOp(rt: Runtime, options: GatherOptions): Promise<Op> {
  const { dataset, order, state, x, labels, batchSize, mean, std } = options;
  const count = options.count ?? batchSize;
  const pad = options.pad ?? 0;
  const outH = dataset.height + 2 * pad, outW = dataset.width + 2 * pad;
  const expected = [count, 1, outH, outW];
  if (x.shape.join() !== expected.join()) {
    throw new Error(`gather: x is [${x.shape}], expected [${expected}]`);
  }
  if (labels.size !== count || labels.dtype !== "u32") {
    throw new Error(`gather: labels is ${labels.dtype} [${labels.shape}], expected u32 [${count}]`);
  }
  if (order.size !== dataset.count || order.dtype !== "u32") {
    throw new Error(
      `gather: order is ${order.dtype} [${order.shape}], expected u32 [${dataset.count}]`,
    );
  }
  if (count > batchSize || count < 1) {
    throw new Error(`gather: count ${count} must lie in 1..batchSize (${batchSize})`);
  }
  const WORKGROUP = 64;
  const k = await kernel(rt, "gather.wgsl", "forward", { WORKGROUP });
  const params = uniform(rt, "gather", {
    count,
    batch_size: batchSize,
    height: dataset.height,
    width: dataset.width,
    pad,
    "f32:scale": 1 / (255 * std),
    "f32:shift": -mean / std,
  });
  const bindings = [dataset.images, dataset.labels, order, state, x, labels, params];
  return op(rt, k, bindings, grid(count * outH, WORKGROUP));
}
