/**
 * safetensors, written by us: an 8-byte little-endian header length, a JSON header, then the
 * tensor bytes (little-endian, row-major).
 *
 * ```
 * u64 n | {"__metadata__": {k: v}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...} | data
 * ```
 *
 * `data_offsets` count from the start of the data area. The reader validates everything before
 * it touches the data (header length, UTF-8, JSON, dtypes, shapes, offsets, overlaps) and never
 * reads out of bounds. Bytes in, bytes out: no Deno APIs.
 *
 * @module
 */

/** Typed array used for each dtype. F16 is a Float16Array; BF16 stays raw bits in a Uint16Array. */
const ARRAYS = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Float16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  U64: BigUint64Array,
  I32: Int32Array,
  U32: Uint32Array,
  I16: Int16Array,
  U16: Uint16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
} as const;

/** The dtypes we read and write. */
export type StoredDtype = keyof typeof ARRAYS;

/** The typed array that holds a tensor of dtype `D` (over any buffer). */
export type ArrayOf<D extends StoredDtype> = {
  F64: Float64Array;
  F32: Float32Array;
  F16: Float16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  U64: BigUint64Array;
  I32: Int32Array;
  U32: Uint32Array;
  I16: Int16Array;
  U16: Uint16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}[D];

/** One tensor: dtype, shape and row-major data (`data.length` = product of `shape`). */
export interface StoredTensor<D extends StoredDtype = StoredDtype> {
  dtype: D;
  shape: number[];
  data: ArrayOf<D>;
}

/** A decoded file: tensors in file order, and the string metadata (a null-prototype record). */
export interface Safetensors {
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

/** The largest header we accept; real headers are kilobytes. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

// Typed arrays use the platform's byte order; safetensors is little-endian.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Encodes tensors (written in the given order) and string metadata as safetensors bytes.
 * The header is padded with spaces to a multiple of 8 bytes, as the reference implementation
 * does, so the data area starts 8-byte aligned.
 *
 * @example
 * ```ts
 * const bytes = encodeSafetensors(
 *   { "classifier.1.bias": { dtype: "F32", shape: [10], data: new Float32Array(10) } },
 *   { epoch: "3" },
 * );
 * ```
 */
export function encodeSafetensors(
  tensors: Map<string, StoredTensor> | Record<string, StoredTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error("safetensors: big-endian platforms are not supported");
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  // Null prototype: a tensor or metadata key "__proto__" stays an ordinary key.
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length > 0) {
    const meta: Record<string, string> = Object.create(null);
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") throw new Error(`metadata "${key}" is not a string`);
      meta[key] = value;
    }
    header.__metadata__ = meta;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === "__metadata__") throw new Error(`"__metadata__" cannot name a tensor`);
    checkTensor(name, t);
    header[name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const spaces = new Uint8Array(padded).fill(0x20);
    spaces.set(json);
    json = spaces;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * Decodes and validates safetensors bytes. Tensor data are views into `bytes` where the
 * offset is aligned for the dtype, copies otherwise. Errors start with `options.name`.
 *
 * @example
 * ```ts
 * const bytes = encodeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
 * const { tensors, metadata } = decodeSafetensors(bytes, { name: "model.safetensors" });
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  options: { name?: string } = {},
): Safetensors {
  const name = options.name ?? "safetensors";
  if (!LITTLE_ENDIAN) fail(name, "big-endian platforms are not supported");
  if (bytes.length < 8) fail(name, `file too short: ${bytes.length} bytes, expected at least 8`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = view.getBigUint64(0, true);
  if (headerBytes > BigInt(MAX_HEADER_BYTES)) {
    fail(name, `header length ${headerBytes} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  if (headerBytes > BigInt(bytes.length - 8)) {
    fail(
      name,
      `header length ${headerBytes} is larger than the file (${bytes.length - 8} bytes after it)`,
    );
  }
  const dataStart = 8 + Number(headerBytes);
  const dataBytes = bytes.length - dataStart;

  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart));
  } catch {
    fail(name, "header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(name, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) fail(name, "header is not a JSON object");

  const metadata: Record<string, string> = Object.create(null);
  const entries: {
    key: string;
    dtype: StoredDtype;
    shape: number[];
    begin: number;
    end: number;
  }[] = [];
  for (const [key, value] of Object.entries(header)) {
    if (key === "__metadata__") {
      if (!isObject(value)) fail(name, `"__metadata__" is not an object`);
      for (const [k, v] of Object.entries(value as object)) {
        if (typeof v !== "string") fail(name, `metadata "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (!isObject(value)) fail(name, `tensor "${key}": entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (typeof dtype !== "string" || !Object.hasOwn(ARRAYS, dtype)) {
      fail(name, `tensor "${key}": unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(name, `tensor "${key}": shape ${JSON.stringify(shape)} is not a list of sizes`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
    ) {
      fail(name, `tensor "${key}": data_offsets ${JSON.stringify(offsets)} are not [begin, end]`);
    }
    const [begin, end] = offsets as number[];
    const size = (shape as number[]).reduce((a, b) => a * b, 1) *
      ARRAYS[dtype as StoredDtype].BYTES_PER_ELEMENT;
    if (!Number.isSafeInteger(size) || end - begin !== size) {
      fail(
        name,
        `tensor "${key}": ${dtype} ${
          JSON.stringify(shape)
        } needs ${size} bytes, data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    if (end > dataBytes) {
      fail(
        name,
        `tensor "${key}": data_offsets [${begin}, ${end}] run past the data area (${dataBytes} bytes)`,
      );
    }
    entries.push({ key, dtype: dtype as StoredDtype, shape: shape as number[], begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) {
      fail(name, `tensors "${sorted[i - 1].key}" and "${sorted[i].key}" overlap`);
    }
  }

  const tensors = new Map<string, StoredTensor>();
  for (const { key, dtype, shape, begin, end } of entries) {
    const TypedArray = ARRAYS[dtype];
    const at = bytes.byteOffset + dataStart + begin;
    const length = (end - begin) / TypedArray.BYTES_PER_ELEMENT;
    // A typed-array view needs an offset aligned to its element size; copy when it is not.
    const data = at % TypedArray.BYTES_PER_ELEMENT === 0
      ? new TypedArray(bytes.buffer as ArrayBuffer, at, length)
      : new TypedArray(bytes.slice(dataStart + begin, dataStart + end).buffer);
    tensors.set(key, { dtype, shape, data } as StoredTensor);
  }
  return { tensors, metadata };
}

/**
 * Returns the tensor `name` with the given dtype and rank, or throws an error that names the
 * file, the tensor and what was expected vs found.
 *
 * @example
 * ```ts
 * const file = decodeSafetensors(encodeSafetensors({ labels: { dtype: "U8", shape: [1], data: new Uint8Array([7]) } }));
 * const labels = getTensor(file, "labels", "U8", { rank: 1, name: "train.safetensors" });
 * ```
 */
export function getTensor<D extends StoredDtype>(
  file: Safetensors,
  key: string,
  dtype: D,
  options: { rank?: number; name?: string } = {},
): StoredTensor<D> {
  const name = options.name ?? "safetensors";
  const t = file.tensors.get(key);
  if (!t) throw new Error(`${name}: no tensor "${key}"`);
  if (t.dtype !== dtype) {
    throw new Error(`${name}: tensor "${key}": expected dtype ${dtype}, found ${t.dtype}`);
  }
  if (options.rank !== undefined && t.shape.length !== options.rank) {
    throw new Error(
      `${name}: tensor "${key}": expected ${options.rank} dimensions, found shape [${t.shape}]`,
    );
  }
  return t as StoredTensor<D>;
}

function checkTensor(name: string, t: StoredTensor): void {
  if (!Object.hasOwn(ARRAYS, t.dtype)) {
    throw new Error(`tensor "${name}": unknown dtype ${JSON.stringify(t.dtype)}`);
  }
  if (!(t.data instanceof ARRAYS[t.dtype])) {
    throw new Error(`tensor "${name}": ${t.dtype} data must be a ${ARRAYS[t.dtype].name}`);
  }
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`tensor "${name}": shape [${t.shape}] is not a list of sizes`);
  }
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (count !== t.data.length) {
    throw new Error(
      `tensor "${name}": shape [${t.shape}] holds ${count} values, data has ${t.data.length}`,
    );
  }
}

function fail(name: string, message: string): never {
  throw new Error(`${name}: ${message}`);
}

function isObject(value: unknown): value is object {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
