/**
 * The flat parameter layout: every parameter and buffer of a model at a known offset in
 * ONE GPU buffer (gradients and AdamW moments use the same layout). Trainable tensors come
 * first, so the optimizer is one dispatch over the first `trainableSize` floats; each tensor
 * starts on a 64-float (256-byte) boundary, WebGPU's alignment for binding a buffer range.
 * @module
 */

import type { Init } from "./layers/layer.ts";
import type { Random } from "./random.ts";
import { numel } from "./runtime.ts";

/** One tensor of the layout, under its full PyTorch name (`features.0.weight`). */
export interface ParamEntry {
  name: string;
  shape: number[];
  init: Init;
  trainable: boolean;
  /** First float in the flat buffer. */
  offset: number;
  size: number;
}

/** Where every tensor lives in the flat buffer. */
export interface ParamLayout {
  /** In the model's declaration order (the state_dict order). */
  entries: ParamEntry[];
  /** Floats covered by trainable tensors, padding included (a multiple of 64). */
  trainableSize: number;
  /** Floats of the whole buffer (a multiple of 64). */
  size: number;
  /** Number of trainable values, padding excluded (the seed's model: 8,922). */
  trainableCount: number;
}

const ALIGN = 64;

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/**
 * Lays out `specs` (declaration order kept in `entries`): trainable first, then buffers.
 *
 * @example
 * ```ts
 * const layout = layoutParams([{ name: "fc.weight", shape: [10, 32], init: { uniform: 0.18 }, trainable: true }]);
 * layout.entries[0].offset; // 0
 * ```
 */
export function layoutParams(
  specs: { name: string; shape: number[]; init: Init; trainable: boolean }[],
): ParamLayout {
  const seen = new Set<string>();
  let offset = 0;
  const placed = new Map<string, ParamEntry>();
  const place = (spec: (typeof specs)[number]) => {
    if (seen.has(spec.name)) throw new Error(`parameter ${spec.name} is declared twice`);
    seen.add(spec.name);
    const size = numel(spec.shape);
    placed.set(spec.name, { ...spec, offset, size });
    offset = align(offset + size);
  };
  specs.filter((s) => s.trainable).forEach(place);
  const trainableSize = offset;
  specs.filter((s) => !s.trainable).forEach(place);
  const entries = specs.map((s) => placed.get(s.name)!);
  const trainableCount = entries.filter((e) => e.trainable).reduce((a, e) => a + e.size, 0);
  return { entries, trainableSize, size: Math.max(offset, ALIGN), trainableCount };
}

/**
 * Initial values for the whole flat buffer, drawn from `rng` tensor by tensor in
 * declaration order (PyTorch's defaults: uniform(-bound, bound), or a constant).
 */
export function initParams(layout: ParamLayout, rng: Random): Float32Array<ArrayBuffer> {
  const values = new Float32Array(layout.size);
  for (const e of layout.entries) {
    const out = values.subarray(e.offset, e.offset + e.size);
    if ("uniform" in e.init) {
      const bound = e.init.uniform;
      for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-bound, bound);
    } else out.fill(e.init.constant);
  }
  return values;
}

/** The entry called `name`, or an error that lists the names there are. */
export function entry(layout: ParamLayout, name: string): ParamEntry {
  const found = layout.entries.find((e) => e.name === name);
  if (!found) {
    throw new Error(`no parameter ${name}; the model has ${layout.entries.map((e) => e.name)}`);
  }
  return found;
}
