/**
 * IDX files, the format of MNIST and Fashion-MNIST: a big-endian header (magic, then one u32
 * per dimension) followed by the values. We read the two kinds MNIST uses, u8 images [N,R,C]
 * and u8 labels [N], raw or gzipped. Bytes in, typed arrays out: no Deno APIs.
 *
 * ```
 * images: 00 00 08 03 | N | R | C | N*R*C bytes      labels: 00 00 08 01 | N | N bytes
 * ```
 *
 * @module
 */

/** u8 images [count, rows, cols], row-major. */
export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  pixels: Uint8Array;
}

/** u8 labels [count]. */
export interface IdxLabels {
  count: number;
  labels: Uint8Array;
}

const IMAGES_MAGIC = 0x00000803; // type 0x08 = u8, 3 dimensions
const LABELS_MAGIC = 0x00000801; // type 0x08 = u8, 1 dimension

/**
 * Returns the bytes decompressed when they start with the gzip magic (1f 8b), else as they are.
 * `name` (the file) prefixes any error.
 *
 * @example
 * ```ts
 * const raw = await gunzipIfNeeded(encodeIdxLabels(new Uint8Array([7])), "labels"); // not gzip: as is
 * ```
 */
export async function gunzipIfNeeded(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("gzip"));
  try {
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new Error(`${name}: truncated or corrupt gzip (${(e as Error).message})`);
  }
}

/**
 * Parses an uncompressed IDX image file (magic 0x00000803, u8 [N,R,C]).
 * The pixels are a view into `bytes`.
 *
 * @example
 * ```ts
 * const file = encodeIdxImages(new Uint8Array(2 * 28 * 28), { rows: 28, cols: 28 });
 * const { count, rows, cols, pixels } = parseIdxImages(file, "train-images-idx3-ubyte");
 * ```
 */
export function parseIdxImages(bytes: Uint8Array, name: string): IdxImages {
  const [count, rows, cols] = parseHeader(bytes, name, IMAGES_MAGIC, 3);
  const pixels = body(bytes, name, 16, count * rows * cols, `${count}x${rows}x${cols} pixels`);
  return { count, rows, cols, pixels };
}

/**
 * Parses an uncompressed IDX label file (magic 0x00000801, u8 [N]).
 * The labels are a view into `bytes`.
 *
 * @example
 * ```ts
 * const { count, labels } = parseIdxLabels(encodeIdxLabels(new Uint8Array([7, 2])), "labels");
 * ```
 */
export function parseIdxLabels(bytes: Uint8Array, name: string): IdxLabels {
  const [count] = parseHeader(bytes, name, LABELS_MAGIC, 1);
  return { count, labels: body(bytes, name, 8, count, `${count} labels`) };
}

/**
 * Encodes u8 images [count, rows, cols] as an IDX file (for tests and tools).
 *
 * @example
 * ```ts
 * const file = encodeIdxImages(new Uint8Array(2 * 28 * 28), { rows: 28, cols: 28 });
 * ```
 */
export function encodeIdxImages(
  pixels: Uint8Array,
  options: { rows: number; cols: number },
): Uint8Array {
  const count = pixels.length / (options.rows * options.cols);
  if (!Number.isInteger(count)) throw new Error(`${pixels.length} pixels are not whole images`);
  return encode(IMAGES_MAGIC, [count, options.rows, options.cols], pixels);
}

/**
 * Encodes u8 labels [count] as an IDX file (for tests and tools).
 *
 * @example
 * ```ts
 * const file = encodeIdxLabels(new Uint8Array([7, 2, 1]));
 * ```
 */
export function encodeIdxLabels(labels: Uint8Array): Uint8Array {
  return encode(LABELS_MAGIC, [labels.length], labels);
}

function parseHeader(bytes: Uint8Array, name: string, magic: number, dims: number): number[] {
  const headerSize = 4 + 4 * dims;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = bytes.length >= 4 ? view.getUint32(0) : -1; // IDX is big-endian
  if (found !== magic) {
    throw new Error(`${name}: wrong IDX magic: expected ${hex(magic)}, found ${hex(found)}`);
  }
  if (bytes.length < headerSize) {
    throw new Error(
      `${name}: file too short for an IDX header: expected at least ${headerSize} bytes, found ${bytes.length}`,
    );
  }
  return Array.from({ length: dims }, (_, i) => view.getUint32(4 + 4 * i));
}

function body(bytes: Uint8Array, name: string, offset: number, size: number, what: string) {
  if (bytes.length !== offset + size) {
    throw new Error(
      `${name}: wrong size for ${what}: expected ${offset + size} bytes, found ${bytes.length}`,
    );
  }
  return bytes.subarray(offset);
}

function encode(magic: number, dims: number[], values: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + values.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(values, 4 + 4 * dims.length);
  return out;
}

function hex(n: number): string {
  return n < 0 ? "end of file" : "0x" + n.toString(16).padStart(8, "0");
}
