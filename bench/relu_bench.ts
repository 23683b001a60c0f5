import { gpuBench } from "./util.ts";
import { layerOps } from "./layer_ops.ts";
import { numel } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { relu } from "../lib/layers/relu.ts";

const rt = createRuntime("auto");

/** Builds `layer` over fresh tensors for an input of `shape` (zero parameters: fine for timing). */
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
