/**
 * Checkpoints as PyTorch state_dicts: the flat parameter buffer sliced by name into F32
 * tensors of PyTorch's shapes, plus `num_batches_tracked` as an I64 scalar per BatchNorm, so
 * `model.load_state_dict(..., strict=True)` of the notebook's model accepts the file. AdamW's
 * moments are saved the same way (`<name>.exp_avg`, `<name>.exp_avg_sq`) for --resume.
 * @module
 */

import type { Model } from "./models.ts";
import type { Safetensors, StoredTensor } from "./io/safetensors.ts";

/** The model's state_dict: weights and BN buffers from the flat `params`, counters = `steps`. */
export function stateDict(
  model: Model,
  params: Float32Array,
  steps: number,
): Map<string, StoredTensor> {
  const out = new Map<string, StoredTensor>();
  for (const { name, layer } of model.layers) {
    for (const p of layer.params) {
      const e = model.layout.entries.find((x) => x.name === `${name}.${p.name}`)!;
      out.set(e.name, {
        dtype: "F32",
        shape: e.shape,
        data: params.slice(e.offset, e.offset + e.size),
      });
    }
    for (const c of layer.counters ?? []) {
      out.set(`${name}.${c}`, { dtype: "I64", shape: [], data: BigInt64Array.of(BigInt(steps)) });
    }
  }
  return out;
}

/** AdamW's state: the moments of every trainable tensor, by the tensor's name. */
export function optimizerDict(
  model: Model,
  moments: { m: Float32Array; v: Float32Array },
): Map<string, StoredTensor> {
  const out = new Map<string, StoredTensor>();
  for (const e of model.layout.entries.filter((x) => x.trainable)) {
    const slice = (a: Float32Array) => a.slice(e.offset, e.offset + e.size);
    out.set(`${e.name}.exp_avg`, { dtype: "F32", shape: e.shape, data: slice(moments.m) });
    out.set(`${e.name}.exp_avg_sq`, { dtype: "F32", shape: e.shape, data: slice(moments.v) });
  }
  return out;
}

/**
 * The flat parameter buffer from a state_dict file. Throws, naming the file, when a tensor is
 * missing, unexpected, or has the wrong dtype or shape: i.e. when the file is not a checkpoint
 * of this model. (BatchNorm's `num_batches_tracked` is checked, not read: the step count is
 * the checkpoint's `steps` metadata, which models without BatchNorm have too.)
 */
export function loadStateDict(
  model: Model,
  file: Safetensors,
  name: string,
): { params: Float32Array<ArrayBuffer> } {
  const params = new Float32Array(model.layout.size);
  const expected = stateDict(model, params, 0);
  checkNames(file, expected, `${name} is not a checkpoint of model ${model.name}`);
  for (const [key, want] of expected) {
    const got = file.tensors.get(key)!;
    checkTensor(got, want, `${name}: ${key}`);
    if (want.dtype === "F32") {
      params.set(
        got.data as Float32Array,
        model.layout.entries.find((e) => e.name === key)!.offset,
      );
    }
  }
  return { params };
}

/** AdamW's moments from an optimizer file written by `optimizerDict`. */
export function loadOptimizerDict(
  model: Model,
  file: Safetensors,
  name: string,
): { m: Float32Array<ArrayBuffer>; v: Float32Array<ArrayBuffer> } {
  const size = model.layout.trainableSize;
  const m = new Float32Array(size), v = new Float32Array(size);
  const expected = optimizerDict(model, { m, v });
  checkNames(file, expected, `${name} is not an optimizer state of model ${model.name}`);
  for (const e of model.layout.entries.filter((x) => x.trainable)) {
    for (const [suffix, target] of [["exp_avg", m], ["exp_avg_sq", v]] as const) {
      const key = `${e.name}.${suffix}`;
      const got = file.tensors.get(key)!;
      checkTensor(got, expected.get(key)!, `${name}: ${key}`);
      target.set(got.data as Float32Array, e.offset);
    }
  }
  return { m, v };
}

function checkNames(file: Safetensors, expected: Map<string, StoredTensor>, what: string): void {
  const missing = [...expected.keys()].filter((k) => !file.tensors.has(k));
  const unexpected = [...file.tensors.keys()].filter((k) => !expected.has(k));
  if (missing.length > 0 || unexpected.length > 0) {
    const parts = [
      missing.length > 0 ? `missing ${missing.join(", ")}` : "",
      unexpected.length > 0 ? `unexpected ${unexpected.join(", ")}` : "",
    ].filter(Boolean);
    throw new Error(`${what}: ${parts.join("; ")}`);
  }
}

function checkTensor(got: StoredTensor, want: StoredTensor, what: string): void {
  if (got.dtype !== want.dtype) {
    throw new Error(`${what}: dtype ${got.dtype}, expected ${want.dtype}`);
  }
  if (got.shape.join(",") !== want.shape.join(",")) {
    throw new Error(`${what}: shape [${got.shape}], expected [${want.shape}]`);
  }
}
