/**
 * A drawn digit made to look like MNIST's: as in LeCun's description of the data set, the
 * stroke's bounding box is scaled (keeping its aspect ratio) to fit a 20x20 box, with grey
 * levels from the averaging, and the result is placed in a 28x28 image so that its centre
 * of mass lies at the image's centre. Pure functions (no DOM), tested in Deno.
 * @module
 */

/** Side of MNIST's images and of the box the digit is scaled into. */
export const SIDE = 28;
export const BOX = 20;

/**
 * The 28x28 MNIST-like input (row-major, 0 = background, 1 = full ink) of an ink image
 * `ink` [height, width] in [0, 1]. All zeros when there is no ink.
 *
 * @example
 * ```ts
 * const ink = new Float32Array(100 * 100);
 * for (let y = 20; y < 80; y++) ink[y * 100 + 50] = 1; // a vertical stroke
 * const input = mnistInput(ink, { width: 100, height: 100 }); // 20 pixels tall, centred
 * ```
 */
export function mnistInput(
  ink: ArrayLike<number>,
  size: { width: number; height: number },
): Float32Array {
  const { width, height } = size;
  if (ink.length !== width * height) {
    throw new Error(`mnistInput: ${ink.length} values for a ${width}x${height} image`);
  }
  const box = boundingBox(ink, size);
  const out = new Float32Array(SIDE * SIDE);
  if (!box) return out;
  const scale = BOX / Math.max(box.width, box.height);
  const w = Math.max(1, Math.round(box.width * scale));
  const h = Math.max(1, Math.round(box.height * scale));
  const small = resample(ink, width, box, { w, h });
  // The centre of mass of the scaled digit, moved to the middle of the 28x28 field.
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = small[y * w + x];
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  }
  const dx = Math.round(SIDE / 2 - mx / mass), dy = Math.round(SIDE / 2 - my / mass);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const tx = x + dx, ty = y + dy;
      if (tx >= 0 && tx < SIDE && ty >= 0 && ty < SIDE) out[ty * SIDE + tx] = small[y * w + x];
    }
  }
  return out;
}

/** The smallest rectangle that holds every pixel with ink, or null. */
export function boundingBox(
  ink: ArrayLike<number>,
  size: { width: number; height: number },
): { x: number; y: number; width: number; height: number } | null {
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
  for (let y = 0; y < size.height; y++) {
    for (let x = 0; x < size.width; x++) {
      if (ink[y * size.width + x] > 0) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  return x1 < 0 ? null : { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
}

/**
 * The box of `ink` resized to w x h by area averaging: each output pixel is the mean of the
 * source area it covers, partly covered source pixels weighted by their overlap.
 */
function resample(
  ink: ArrayLike<number>,
  stride: number,
  box: { x: number; y: number; width: number; height: number },
  to: { w: number; h: number },
): Float32Array {
  const out = new Float32Array(to.w * to.h);
  const sx = box.width / to.w, sy = box.height / to.h;
  for (let ty = 0; ty < to.h; ty++) {
    const ya = ty * sy, yb = ya + sy;
    for (let tx = 0; tx < to.w; tx++) {
      const xa = tx * sx, xb = xa + sx;
      let sum = 0;
      for (let y = Math.floor(ya); y < Math.ceil(yb); y++) {
        const wy = Math.min(yb, y + 1) - Math.max(ya, y);
        for (let x = Math.floor(xa); x < Math.ceil(xb); x++) {
          const wx = Math.min(xb, x + 1) - Math.max(xa, x);
          sum += wx * wy * ink[(box.y + y) * stride + box.x + x];
        }
      }
      out[ty * to.w + tx] = Math.min(1, sum / (sx * sy));
    }
  }
  return out;
}
