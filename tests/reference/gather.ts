/**
 * Reference (float64) of the batch gather + normalization of kernels/gather.wgsl.
 * @module
 */

/** A dataset on the CPU: images u8 [N, height, width], labels u8 [N]. */
export interface CpuDataset {
  images: Uint8Array;
  labels: Uint8Array;
  height: number;
  width: number;
}

/** Which images to gather and how to normalize them. */
export interface GatherReferenceOptions {
  /** The epoch's permutation of 0..N-1. */
  order: ArrayLike<number>;
  /** Index of the batch within the epoch. */
  batch: number;
  /** Stride of the batch offset into `order`. */
  batchSize: number;
  /** Images to gather (<= batchSize). */
  count: number;
  mean: number;
  std: number;
  /** Border of zeros (after normalization) around each image. */
  pad: number;
}

/**
 * x [count, 1, H + 2 pad, W + 2 pad] with x[i, 0, pad + r, pad + c] =
 * (images[order[batch * batchSize + i], r, c] / 255 - mean) / std and 0 in the border,
 * and labels [count] = labels[order[batch * batchSize + i]].
 */
export function gatherReference(
  data: CpuDataset,
  options: GatherReferenceOptions,
): { x: Float64Array; labels: Uint32Array } {
  const { order, batch, batchSize, count, mean, std, pad } = options;
  const { height, width } = data;
  const outH = height + 2 * pad, outW = width + 2 * pad;
  const x = new Float64Array(count * outH * outW);
  const labels = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const image = order[batch * batchSize + i];
    labels[i] = data.labels[image];
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        const pixel = data.images[(image * height + r) * width + c];
        x[(i * outH + pad + r) * outW + pad + c] = (pixel / 255 - mean) / std;
      }
    }
  }
  return { x, labels };
}
