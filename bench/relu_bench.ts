import { gpuBench } from "./util.ts";
import { numel, type Runtime, tensor } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { relu } from "../lib/layers/relu.ts";
import type { Layer, LayerOps } from "../lib/layers/layer.ts";

const rt = createRuntime("auto");

/** Builds `layer` over fresh tensors for an input of `shape` (zero parameters: fine for timing). */
async function layerOps(rt: Runtime, layer: Layer, shape: number[]): Promise<LayerOps> {
  const out = layer.outputShape(shape);
  const params = Object.fromEntries(layer.params.map((p) => [p.name, tensor(rt, p.shape)]));
  const grads = Object.fromEntries(layer.params.map((p) => [p.name, tensor(rt, p.shape)]));
  const [x, y, dy, dx] = [shape, out, out, shape].map((s) => tensor(rt, s));
  return await layer.build({ rt, x, y, dy, dx, params, grads });
}

// A standalone ReLU at the seed's two activation shapes, batch 32 (the seed model fuses it
// into BatchNorm2d; this is the unfused path). Bytes: forward reads x and writes y; backward
// reads x and dy and writes dx.
for (const shape of [[32, 16, 13, 13], [32, 32, 5, 5]]) {
  const n = numel(shape);
  gpuBench(`relu forward [${shape}]`, rt, async (rt) => ({
    ops: (await layerOps(rt, relu(), shape)).train,
    work: { bytes: 8 * n },
  }));
  gpuBench(`relu backward [${shape}]`, rt, async (rt) => ({
    ops: (await layerOps(rt, relu(), shape)).backward,
    work: { bytes: 12 * n },
  }));
}
