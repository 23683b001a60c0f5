/**
 * LeNet-5's C3 at batch 32, [32,6,14,14] -> [32,16,10,10] 5x5: LeCun's connection table
 * (kernels/conv2d_table.wgsl, 60 connections) beside the dense Conv2d(6, 16, 5)
 * (kernels/conv2d.wgsl, 96 connections). GFLOP/s count only the multiply-adds each computes,
 * so the time per call is the figure to compare. Then each whole pass in both tiers: the CPU
 * wing runs the table as its dense conv on a scattered weight (lib/cpu/conv2d_table.ts).
 * @module
 */

import { gpuBench } from "./util.ts";
import { type Runtime, tensor } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { conv2dTable, LECUN_C3_TABLE } from "../lib/layers/conv2d_table.ts";
import { conv2d } from "../lib/layers/conv2d.ts";
import type { Layer } from "../lib/layers/layer.ts";
import { layerOps as tierOps } from "./layer_ops.ts";
import { PLAIN_TIER } from "../lib/tier.ts";
import { CPU_TIER } from "../lib/cpu/tier.ts";

const rt = createRuntime("auto");
const X = [32, 6, 14, 14];

/** The layer's ops on zero-filled tensors, and its forward flops. */
async function layerOps(rt: Runtime, layer: Layer) {
  const yShape = layer.outputShape(X);
  const params = Object.fromEntries(layer.params.map((p) => [p.name, tensor(rt, p.shape)]));
  const grads = Object.fromEntries(layer.params.map((p) => [p.name, tensor(rt, p.shape)]));
  const ops = await layer.build({
    rt,
    x: tensor(rt, X),
    y: tensor(rt, yShape),
    dy: tensor(rt, yShape),
    dx: tensor(rt, X),
    params,
    grads,
  });
  return { ops, flops: layer.flops!(X) };
}

const layers: [string, () => Layer][] = [
  ["C3 table (lecun)", () => conv2dTable({ inChannels: 6, table: LECUN_C3_TABLE, kernelSize: 5 })],
  ["C3 dense (full)", () => conv2d({ inChannels: 6, outChannels: 16, kernelSize: 5 })],
];
for (const [name, make] of layers) {
  for (const entry of ["forward", "backward_input", "backward_weight"]) {
    gpuBench(`${name} ${entry} [${X}]`, rt, async (rt) => {
      const { ops, flops } = await layerOps(rt, make());
      // The dense forward is two dispatches (it stages its weights, then convolves).
      const timed = entry === "forward"
        ? ops.train
        : [ops.backward[entry === "backward_input" ? 0 : ops.backward.length - 1]];
      return { ops: timed, work: { flops } };
    }, { group: entry });
  }
}

// Whole passes, both tiers: the wing's table conv against its dense conv and the plain table.
for (const tier of [PLAIN_TIER, CPU_TIER]) {
  for (const [name, make] of layers) {
    for (const pass of ["train", "backward"] as const) {
      gpuBench(
        `${name} ${pass === "train" ? "forward" : "backward"}, ${tier.name} tier`,
        rt,
        async (rt) => {
          const layer = make();
          return {
            ops: (await tierOps(rt, layer, X, { tier }))[pass],
            work: { flops: layer.flops!(X) },
          };
        },
        { group: `${pass} pass` },
      );
    }
  }
}
