/**
 * AvgPool2d and MaxPool2d (kernels/pool2d.wgsl) at LeNet-5's shapes, batch 32: S2 2x2 over
 * [32,6,28,28] and S4 2x2 over [32,16,10,10]; every entry point, alone and with LeNet-5's
 * tanh fused in (Tanh+AvgPool2d, as lenet5() runs them), in the plain tier; then the CPU
 * wing's average pool (kernels/cpu/pool2d.wgsl) between two convs, as LeNet-5's S2 runs there
 * (input and output handed over packed).
 * @module
 */

import { gpuBench } from "./util.ts";
import { layerOps } from "./layer_ops.ts";
import { numel } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { avgPool2d, maxPool2d, type Pool2dOptions } from "../lib/layers/pool2d.ts";
import { conv2d } from "../lib/layers/conv2d.ts";
import { PLAIN_TIER } from "../lib/tier.ts";
import { CPU_TIER } from "../lib/cpu/tier.ts";

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
        ops: (await layerOps(rt, make(options), [...shape], { tier: PLAIN_TIER })).train,
        work: { bytes: 4 * (n + m) + indexBytes },
      }));
      gpuBench(`${what} backward ${name} [${shape}]`, rt, async (rt) => ({
        ops: (await layerOps(rt, make(options), [...shape], { tier: PLAIN_TIER })).backward,
        work: { bytes: 4 * (n + m) + indexBytes + (activation ? 4 * n : 0) },
      }));
    }
  }
}

// The wing's S2 and S4 as LeNet-5 runs them: between two convs, packed in and out.
const convs = { before: conv2d({ inChannels: 1, outChannels: 6, kernelSize: 5 }) };
for (const [name, shape] of [["S2", [32, 6, 28, 28]], ["S4", [32, 16, 10, 10]]] as const) {
  const n = numel(shape), m = n / 4;
  const pool = () => avgPool2d({ kernelSize: 2, activation: "tanh" });
  const around = { tier: CPU_TIER, ...convs, after: convs.before };
  gpuBench(`tanh+avg_pool2d forward ${name} [${shape}], CPU wing, packed`, rt, async (rt) => ({
    ops: (await layerOps(rt, pool(), [...shape], around)).train,
    work: { bytes: 4 * (n + m) },
  }));
  gpuBench(`tanh+avg_pool2d backward ${name} [${shape}], CPU wing, packed`, rt, async (rt) => ({
    ops: (await layerOps(rt, pool(), [...shape], around)).backward,
    work: { bytes: 4 * (2 * n + m) },
  }));
}
