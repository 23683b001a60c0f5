/**
 * Small images of arrays of numbers, for filters and feature maps: one canvas per map,
 * blue for negative, white for zero, red for positive, scaled by the largest magnitude.
 * @module
 */

/** A canvas showing `values` [height, width] (row-major), `scale` screen pixels per value. */
export function mapCanvas(
  values: Float32Array,
  size: { width: number; height: number; scale: number; limit?: number },
): HTMLCanvasElement {
  const { width, height, scale } = size;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
  canvas.className = "map";
  const limit = size.limit ?? Math.max(1e-8, ...values.map(Math.abs));
  const ctx = canvas.getContext("2d")!;
  const image = ctx.createImageData(width, height);
  values.forEach((v, i) => {
    const t = Math.max(-1, Math.min(1, v / limit));
    // White at 0, towards red (positive) or blue (negative).
    const rgb = t >= 0
      ? [255, 255 * (1 - t), 255 * (1 - t) * 0.9]
      : [255 * (1 + t) * 0.9, 255 * (1 + t), 255];
    image.data.set([...rgb, 255], 4 * i);
  });
  ctx.putImageData(image, 0, 0);
  return canvas;
}

/** A grayscale canvas of one MNIST image (u8 [28, 28] or [0, 1] floats). */
export function digitCanvas(pixels: ArrayLike<number>, options: { max: number; scale: number }) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 28;
  canvas.style.width = canvas.style.height = `${28 * options.scale}px`;
  canvas.className = "digit";
  const ctx = canvas.getContext("2d")!;
  const image = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = (255 * pixels[i]) / options.max;
    image.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}
