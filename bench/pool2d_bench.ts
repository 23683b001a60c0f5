/**
 * AvgPool2d and MaxPool2d (kernels/pool2d.wgsl) at LeNet-5's shapes, batch 32: S2 2x2 over
 * [32,6,28,28] and S4 2x2 over [32,16,10,10]; every entry point, alone and with LeNet-5's
 * tanh fused in (Tanh+AvgPool2d, as lenet5() runs them).
 * @module
 */

import { gpuBench } from "./util.ts";
import { layerOps } from "./layer_ops.ts";
import { numel } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { avgPool2d, maxPool2d, type Pool2dOptions } from "../lib/layers/pool2d.ts";

const rt = createRuntime("auto");

// Bytes: avg forward reads x, writes y; avg backward reads dy, writes dx (and reads x when an
// activation is fused in); max forward also writes the indices; max backward also reads them.
for (const [name, shape] of [["S2", [32, 6, 28, 28]], ["S4", [32, 16, 10, 10]]] as const) {
  const n = numel(shape), m = n / 4;
  const pools = [
    ["avg_pool2d", avgPool2d, 0],
    ["max_pool2d", maxPool2d, 4 * m],
  ] as const;
  for (const [kind, make, indexBytes] of pools) {
    for (const activation of [undefined, "tanh"] as const) {
      const options: Pool2dOptions = { kernelSize: 2, activation };
      const what = `${activation ? "tanh+" : ""}${kind}`;
      gpuBench(`${what} forward ${name} [${shape}]`, rt, async (rt) => ({
        ops: (await layerOps(rt, make(options), [...shape])).train,
        work: { bytes: 4 * (n + m) + indexBytes },
      }));
      gpuBench(`${what} backward ${name} [${shape}]`, rt, async (rt) => ({
        ops: (await layerOps(rt, make(options), [...shape])).backward,
        work: { bytes: 4 * (n + m) + indexBytes + (activation ? 4 * n : 0) },
      }));
    }
  }
}
