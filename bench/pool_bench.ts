import { gpuBench } from "./util.ts";
import { numel, type Runtime, tensor } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { adaptiveAvgPool2d } from "../lib/layers/adaptive_avg_pool2d.ts";
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

// The seed's AdaptiveAvgPool2d(1) over [32,32,5,5]. Bytes: forward reads x and writes y;
// backward reads dy and writes dx.
const shape = [32, 32, 5, 5];
const n = numel(shape), rows = 32 * 32;
gpuBench(`adaptive_avg_pool2d forward [${shape}]`, rt, async (rt) => ({
  ops: (await layerOps(rt, adaptiveAvgPool2d(), shape)).train,
  work: { bytes: 4 * (n + rows) },
}));
gpuBench(`adaptive_avg_pool2d backward [${shape}]`, rt, async (rt) => ({
  ops: (await layerOps(rt, adaptiveAvgPool2d(), shape)).backward,
  work: { bytes: 4 * (n + rows) },
}));
