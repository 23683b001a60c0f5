/**
 * Tanh and Sigmoid (kernels/activation.wgsl) at LeNet-5's activation shapes, batch 32:
 * after C1 [32,6,28,28], C3 [32,16,10,10], C5 [32,120,1,1] and F6 [32,84].
 * @module
 */

import { gpuBench } from "./util.ts";
import { layerOps } from "./layer_ops.ts";
import { numel } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { sigmoid, tanh } from "../lib/layers/activation.ts";

const rt = createRuntime("auto");

/** Builds `layer` over fresh zero-filled tensors for an input of `shape`. */
// Bytes: forward reads x and writes y; backward reads y and dy and writes dx.
for (const shape of [[32, 6, 28, 28], [32, 16, 10, 10], [32, 120, 1, 1], [32, 84]]) {
  const n = numel(shape);
  for (const [name, make] of [["tanh", tanh], ["sigmoid", sigmoid]] as const) {
    gpuBench(`${name} forward [${shape}]`, rt, async (rt) => ({
      ops: (await layerOps(rt, make(), shape)).train,
      work: { bytes: 8 * n },
    }));
    gpuBench(`${name} backward [${shape}]`, rt, async (rt) => ({
      ops: (await layerOps(rt, make(), shape)).backward,
      work: { bytes: 12 * n },
    }));
  }
}
