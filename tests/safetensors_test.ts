import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensorsFile, writeSafetensorsFile } from "../lib/io/files.ts";
import { findPython } from "./pytorch/python.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  getTensor,
  type StoredTensor,
} from "../lib/io/safetensors.ts";

const tensors: Record<string, StoredTensor> = {
  "features.0.weight": {
    dtype: "F32",
    shape: [2, 3],
    data: new Float32Array([1, -2, 3.5, 4, 5, 6]),
  },
  "features.1.num_batches_tracked": { dtype: "I64", shape: [], data: new BigInt64Array([-3n]) },
  labels: { dtype: "U8", shape: [3], data: new Uint8Array([7, 0, 255]) },
  half: { dtype: "F16", shape: [2], data: new Float16Array([0.5, -1.25]) },
  wide: { dtype: "F64", shape: [1], data: new Float64Array([Math.PI]) },
  ints: { dtype: "I32", shape: [2], data: new Int32Array([-1, 2 ** 30]) },
  small: { dtype: "I8", shape: [1], data: new Int8Array([-5]) },
  short: { dtype: "I16", shape: [1], data: new Int16Array([-300]) },
  ushort: { dtype: "U16", shape: [1], data: new Uint16Array([65535]) },
  uint: { dtype: "U32", shape: [1], data: new Uint32Array([4e9]) },
  brain: { dtype: "BF16", shape: [1], data: new Uint16Array([0x3f80]) },
  flags: { dtype: "BOOL", shape: [2], data: new Uint8Array([1, 0]) },
  empty: { dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
};
const metadata = { epoch: "3", config: '{"lr":0.001}' };

/** A file with a hand-made header (string or object) and `dataBytes` zero bytes of data. */
function craft(header: unknown, dataBytes = 0, lengthField?: bigint): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

Deno.test("safetensors round trip keeps every dtype, shape, value, order and metadata", () => {
  const bytes = encodeSafetensors(tensors, metadata);
  const file = decodeSafetensors(bytes);
  assert.deepEqual([...file.tensors.keys()], Object.keys(tensors));
  for (const [name, t] of Object.entries(tensors)) {
    assert.deepEqual(file.tensors.get(name), t, name);
  }
  assert.deepEqual({ ...file.metadata }, metadata);
  assert.equal(Object.getPrototypeOf(file.metadata), null);
});

Deno.test("safetensors header is space-padded so the data area starts 8-byte aligned", () => {
  const bytes = encodeSafetensors(tensors, metadata);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0);
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.equal(JSON.parse(header).__metadata__.epoch, "3");
  assert.match(header, /^\{"__metadata__"/);
});

Deno.test("safetensors reader copies data that would be unaligned as a view", () => {
  const bytes = encodeSafetensors(tensors);
  const shifted = new Uint8Array(bytes.length + 1).subarray(1); // byteOffset 1
  shifted.set(bytes);
  const file = decodeSafetensors(shifted);
  assert.deepEqual(file.tensors.get("features.0.weight"), tensors["features.0.weight"]);
  assert.deepEqual(
    file.tensors.get("features.1.num_batches_tracked")!.data,
    new BigInt64Array([-3n]),
  );
});

Deno.test("safetensors file shorter than the 8-byte length is rejected", () => {
  assert.throws(
    () => decodeSafetensors(new Uint8Array(5), { name: "a.st" }),
    /a.st: file too short/,
  );
});

Deno.test("safetensors header length larger than the file is rejected", () => {
  assert.throws(
    () => decodeSafetensors(craft({}, 0, 1000n), { name: "big.st" }),
    /big.st: header length 1000 is larger than the file \(2 bytes after it\)/,
  );
  assert.throws(() => decodeSafetensors(craft({}, 0, 2n ** 63n)), /exceeds the limit/);
});

Deno.test("safetensors header that is not UTF-8, not JSON or not an object is rejected", () => {
  const bad = craft("{}");
  bad[8] = 0xff;
  assert.throws(() => decodeSafetensors(bad), /not valid UTF-8/);
  assert.throws(() => decodeSafetensors(craft("{oops")), /not valid JSON/);
  assert.throws(() => decodeSafetensors(craft("[1]")), /not a JSON object/);
  assert.throws(
    () => decodeSafetensors(craft({ __metadata__: { a: 1 } })),
    /metadata "a" is not a string/,
  );
});

Deno.test("safetensors unknown dtype is rejected", () => {
  const h = { w: { dtype: "F8_E4M3X", shape: [1], data_offsets: [0, 1] } };
  assert.throws(() => decodeSafetensors(craft(h, 1)), /tensor "w": unknown dtype "F8_E4M3X"/);
  const proto = { w: { dtype: "constructor", shape: [1], data_offsets: [0, 1] } };
  assert.throws(() => decodeSafetensors(craft(proto, 1)), /unknown dtype "constructor"/);
});

Deno.test("safetensors shapes must be lists of non-negative safe integers", () => {
  for (const shape of [[-1], [1.5], ["2"], 4, [2 ** 60]]) {
    const h = { w: { dtype: "U8", shape, data_offsets: [0, 2] } };
    assert.throws(() => decodeSafetensors(craft(h, 2)), /shape .* is not a list of sizes/);
  }
});

Deno.test("safetensors offsets must hold exactly the tensor and stay inside the data area", () => {
  const wrongSize = { w: { dtype: "F32", shape: [2], data_offsets: [0, 4] } };
  assert.throws(
    () => decodeSafetensors(craft(wrongSize, 8)),
    /F32 \[2\] needs 8 bytes, data_offsets \[0, 4\] hold 4/,
  );
  const outside = { w: { dtype: "F32", shape: [2], data_offsets: [4, 12] } };
  assert.throws(() => decodeSafetensors(craft(outside, 8)), /run past the data area \(8 bytes\)/);
  const reversed = { w: { dtype: "U8", shape: [0], data_offsets: [4, 2] } };
  assert.throws(() => decodeSafetensors(craft(reversed, 8)), /are not \[begin, end\]/);
  const huge = { w: { dtype: "U8", shape: [1], data_offsets: [2 ** 53, 2 ** 53 + 1] } };
  assert.throws(() => decodeSafetensors(craft(huge, 8)), /are not \[begin, end\]/);
});

Deno.test("safetensors overlapping tensors are rejected", () => {
  const h = {
    a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    b: { dtype: "U8", shape: [4], data_offsets: [6, 10] },
  };
  assert.throws(() => decodeSafetensors(craft(h, 10)), /tensors "a" and "b" overlap/);
});

Deno.test("safetensors __proto__ and constructor keys cannot pollute prototypes", () => {
  // Written as text: an object literal's __proto__ would set the prototype, not a key.
  const h = '{"__metadata__":{"__proto__":"p","constructor":"x"},' +
    '"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' +
    '"prototype":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
  const file = decodeSafetensors(craft(h, 2));
  assert.equal(({} as Record<string, unknown>).dtype, undefined);
  assert.equal(Object.getPrototypeOf(file.metadata), null);
  assert.equal(file.metadata["__proto__"], "p");
  assert.equal(file.metadata.constructor, "x");
  assert.deepEqual([...file.tensors.keys()], ["__proto__", "prototype"]);
});

Deno.test("safetensors writer rejects data that does not match dtype or shape", () => {
  const wrongLength: Record<string, StoredTensor> = {
    w: { dtype: "F32", shape: [3], data: new Float32Array(2) },
  };
  assert.throws(() => encodeSafetensors(wrongLength), /shape \[3\] holds 3 values, data has 2/);
  const wrongType = {
    w: { dtype: "F32", shape: [2], data: new Float64Array(2) },
  } as unknown as Record<
    string,
    StoredTensor
  >;
  assert.throws(() => encodeSafetensors(wrongType), /F32 data must be a Float32Array/);
  const reserved = { __metadata__: tensors.labels };
  assert.throws(() => encodeSafetensors(reserved), /cannot name a tensor/);
});

Deno.test("safetensors getTensor names the file, tensor and expected vs found", () => {
  const file = decodeSafetensors(encodeSafetensors(tensors));
  assert.equal(getTensor(file, "labels", "U8", { rank: 1 }).data[0], 7);
  assert.throws(() => getTensor(file, "nope", "U8", { name: "t.st" }), /t.st: no tensor "nope"/);
  assert.throws(() => getTensor(file, "labels", "F32"), /expected dtype F32, found U8/);
  assert.throws(() => getTensor(file, "labels", "U8", { rank: 3 }), /expected 3 dimensions/);
});

Deno.test("safetensors file helpers write atomically and name a missing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "m.safetensors");
    await writeSafetensorsFile(path, tensors, metadata);
    assert.deepEqual((await readSafetensorsFile(path)).tensors.get("labels"), tensors.labels);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["m.safetensors"]);
    await assert.rejects(
      () => readSafetensorsFile(join(dir, "no.safetensors")),
      /no.safetensors: file not found/,
    );
    await assert.rejects(
      () => writeSafetensorsFile(join(dir, "missing", "x.safetensors"), tensors),
      /missing\/x.safetensors: cannot write/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// An independent reader: Python's standard library parses the header and unpacks the values.
const PYTHON_READER = `
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header_bytes = raw[8:8 + n]
assert (8 + n) % 8 == 0 and header_bytes.rstrip(b" ") == header_bytes.strip(), "padding"
header = json.loads(header_bytes)
formats = {"F32": "f", "F64": "d", "F16": "e", "I64": "q", "I32": "i", "I16": "h", "I8": "b",
           "U8": "B", "U16": "H", "U32": "I", "BOOL": "?"}
out = {"__metadata__": header.pop("__metadata__", {}), "order": list(header)}
for name, t in header.items():
    begin, end = t["data_offsets"]
    count = 1
    for d in t["shape"]:
        count *= d
    fmt = formats.get(t["dtype"])
    if fmt:
        values = struct.unpack("<%d%s" % (count, fmt), raw[8 + n + begin:8 + n + end])
        out[name] = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values]
print(json.dumps(out))
`;

const python = await findPython();
if (!python) console.log("python3 not found: skipping the independent-reader test");

Deno.test({
  name: "safetensors written by us is read identically by an independent Python reader",
  ignore: !python,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = join(dir, "x.safetensors");
      await writeSafetensorsFile(path, tensors, metadata);
      const run = await new Deno.Command(python!, { args: ["-c", PYTHON_READER, path] }).output();
      assert.ok(run.success, new TextDecoder().decode(run.stderr));
      const read = JSON.parse(new TextDecoder().decode(run.stdout));
      assert.deepEqual(read.__metadata__, metadata);
      assert.deepEqual(read.order, Object.keys(tensors));
      for (const [name, t] of Object.entries(tensors)) {
        if (t.dtype === "BF16") continue; // no struct format for bfloat16
        const expected = Array.from(
          t.data as ArrayLike<number | bigint>,
          (v) =>
            typeof v === "number" && Number.isInteger(v) && !t.dtype.startsWith("F")
              ? (t.dtype === "BOOL" ? v === 1 : String(v))
              : typeof v === "bigint"
              ? String(v)
              : v,
        );
        assert.deepEqual(read[name], expected, name);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
