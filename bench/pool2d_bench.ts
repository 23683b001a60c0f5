/**
 * AvgPool2d and MaxPool2d (kernels/pool2d.wgsl) at LeNet-5's shapes, batch 32: S2 2x2 over
 * [32,6,28,28] and S4 2x2 over [32,16,10,10]; every entry point.
 * @module
 */

import { gpuBench } from "./util.ts";
import { layerOps } from "./layer_ops.ts";
import { numel } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { avgPool2d, maxPool2d } from "../lib/layers/pool2d.ts";

const rt = createRuntime("auto");

/** Builds `layer` over fresh zero-filled tensors for an input of `shape`. */
// Bytes: avg forward reads x, writes y; avg backward reads dy, writes dx; max forward also
// writes the indices; max backward also reads them.
for (const [name, shape] of [["S2", [32, 6, 28, 28]], ["S4", [32, 16, 10, 10]]] as const) {
  const n = numel(shape), m = n / 4;
  const pools = [
    ["avg_pool2d", () => avgPool2d({ kernelSize: 2 }), 0],
    ["max_pool2d", () => maxPool2d({ kernelSize: 2 }), 4 * m],
  ] as const;
  for (const [kind, make, indexBytes] of pools) {
    gpuBench(`${kind} forward ${name} [${shape}]`, rt, async (rt) => ({
      ops: (await layerOps(rt, make(), [...shape])).train,
      work: { bytes: 4 * (n + m) + indexBytes },
    }));
    gpuBench(`${kind} backward ${name} [${shape}]`, rt, async (rt) => ({
      ops: (await layerOps(rt, make(), [...shape])).backward,
      work: { bytes: 4 * (n + m) + indexBytes },
    }));
  }
}
