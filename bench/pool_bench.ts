import { gpuBench } from "./util.ts";
import { layerOps } from "./layer_ops.ts";
import { numel } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { adaptiveAvgPool2d } from "../lib/layers/adaptive_avg_pool2d.ts";

const rt = createRuntime("auto");

/** Builds `layer` over fresh tensors for an input of `shape` (zero parameters: fine for timing). */
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
