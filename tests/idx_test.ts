import assert from "node:assert/strict";
import {
  encodeIdxImages,
  encodeIdxLabels,
  gunzipIfNeeded,
  parseIdxImages,
  parseIdxLabels,
} from "../lib/io/idx.ts";

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const pixels = Uint8Array.from({ length: 3 * 4 * 5 }, (_, i) => i);
const images = encodeIdxImages(pixels, { rows: 4, cols: 5 });
const labels = encodeIdxLabels(new Uint8Array([7, 2, 1]));

Deno.test("idx images and labels read back what was encoded", () => {
  const read = parseIdxImages(images, "images");
  assert.deepEqual([read.count, read.rows, read.cols], [3, 4, 5]);
  assert.deepEqual(read.pixels, pixels);
  const l = parseIdxLabels(labels, "labels");
  assert.equal(l.count, 3);
  assert.deepEqual(l.labels, new Uint8Array([7, 2, 1]));
});

Deno.test("idx gzip is detected by its magic and raw bytes pass through", async () => {
  assert.deepEqual(await gunzipIfNeeded(await gzip(images), "a.gz"), images);
  assert.equal(await gunzipIfNeeded(images, "a"), images);
});

Deno.test("idx truncated gzip gives a clear error naming the file", async () => {
  const gz = await gzip(images);
  await assert.rejects(
    () => gunzipIfNeeded(gz.subarray(0, gz.length - 6), "train-images-idx3-ubyte.gz"),
    /^Error: train-images-idx3-ubyte.gz: truncated or corrupt gzip/,
  );
});

Deno.test("idx wrong magic (labels read as images) is rejected with expected vs found", () => {
  assert.throws(
    () => parseIdxImages(labels, "x-labels"),
    /x-labels: wrong IDX magic: expected 0x00000803, found 0x00000801/,
  );
  assert.throws(() => parseIdxLabels(images, "y"), /expected 0x00000801, found 0x00000803/);
});

Deno.test("idx header shorter than its dimensions is rejected", () => {
  assert.throws(() => parseIdxImages(images.subarray(0, 10), "short"), /short: file too short/);
});

Deno.test("idx body size must match the counts (truncated or with extra bytes)", () => {
  assert.throws(
    () => parseIdxImages(images.subarray(0, images.length - 1), "cut"),
    /cut: wrong size for 3x4x5 pixels: expected 76 bytes, found 75/,
  );
  const longer = new Uint8Array(labels.length + 1);
  longer.set(labels);
  assert.throws(() => parseIdxLabels(longer, "long"), /expected 11 bytes, found 12/);
});
