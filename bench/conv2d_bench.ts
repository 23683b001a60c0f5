/**
 * Conv2d kernel throughput at the seed model's shapes (batch 32): conv1 1->16 k4 s2 on 28x28
 * (its backward has no dx: it reads the image), conv2 16->32 k4 s2 on 13x13. Each entry point
 * of the CPU wing's kernels/cpu/conv2d.wgsl (forward counts the conv alone; stage_weights and
 * pack, which run before it, are timed on their own), beside the plain tier's
 * kernels/conv2d.wgsl it must beat, and the layer's whole forward and backward op lists. The
 * wing's rows record 100 calls per submit, the plain ones 1 (each call also carries its share
 * of the ~10 ms wait for the queue).
 * @module
 */

import { gpuBench } from "./util.ts";
import { type Op, opName, type Runtime, tensor } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { conv2d, type Conv2dOptions } from "../lib/layers/conv2d.ts";
import type { LayerOps } from "../lib/layers/layer.ts";
import { buildLayer, PLAIN_TIER, type Tier } from "../lib/tier.ts";
import { CPU_TIER } from "../lib/cpu/tier.ts";

const rt = createRuntime("auto");

/** The layer's ops for input `x` [N,C,H,W], on zero-filled tensors. */
async function layerOps(
  rt: Runtime,
  x: number[],
  options: Conv2dOptions,
  withDx: boolean,
  tier: Tier,
) {
  const layer = conv2d(options);
  const yShape = layer.outputShape(x);
  const [k, c, r] = [options.outChannels, options.inChannels, options.kernelSize];
  const ops = await buildLayer(tier, layer, {
    rt,
    x: tensor(rt, x, { label: "x" }),
    y: tensor(rt, yShape, { label: "y" }),
    dy: tensor(rt, yShape, { label: "dy" }),
    dx: withDx ? tensor(rt, x, { label: "dx" }) : null,
    params: { weight: tensor(rt, [k, c, r, r]), bias: tensor(rt, [k]) },
    grads: { weight: tensor(rt, [k, c, r, r]), bias: tensor(rt, [k]) },
  });
  return { ops, flops: layer.flops!(x) };
}

/** Which ops of a layer a row times, and how many forward-FLOPs they are worth. */
type Pick = { name: string; ops: (o: LayerOps) => Op[]; flops: number };

function benchLayer(name: string, x: number[], options: Conv2dOptions, withDx: boolean): void {
  // The ops of one entry point (with the copies and packing that feed it, in order).
  const named = (list: (o: LayerOps) => Op[], entry: string) => (o: LayerOps) =>
    list(o).filter((x) => opName(x) === `cpu/conv2d.wgsl:${entry}`);
  const fast: Pick[] = [
    { name: "stage_weights", ops: named((o) => o.train, "stage_weights"), flops: 0 },
    { name: "pack x", ops: named((o) => o.train, "pack"), flops: 0 },
    { name: "forward", ops: named((o) => o.train, "forward"), flops: 1 },
    ...(withDx
      ? [{ name: "backward_input", ops: named((o) => o.backward, "backward_input"), flops: 1 }]
      : []),
    { name: "backward_weight", ops: named((o) => o.backward, "backward_weight"), flops: 1 },
    { name: "reduce_weight", ops: named((o) => o.backward, "reduce_weight"), flops: 0 },
    { name: "layer forward", ops: (o) => o.train, flops: 1 },
    { name: "layer backward", ops: (o) => o.backward, flops: withDx ? 2 : 1 },
  ];
  const plain: Pick[] = [
    { name: "forward", ops: (o) => [o.train[0]], flops: 1 },
    ...(withDx
      ? [{ name: "backward_input", ops: (o: LayerOps) => [o.backward[0]], flops: 1 }]
      : []),
    { name: "backward_weight", ops: (o) => [o.backward.at(-1)!], flops: 1 },
  ];
  for (const [tier, picks] of [[CPU_TIER, fast], [PLAIN_TIER, plain]] as const) {
    for (const pick of picks) {
      gpuBench(`${name} ${pick.name} (${tier.name})`, rt, async (rt) => {
        const { ops, flops } = await layerOps(rt, x, options, withDx, tier);
        // stage_weights reads each weight once and writes it twice; pack reads x and writes it
        // again (in groups of 4 images); reduce_weight: time only.
        const weights = options.outChannels * options.inChannels * options.kernelSize ** 2;
        const bytes: Record<string, number> = {
          "stage_weights": 12 * weights,
          "pack x": 8 * x.reduce((a, b) => a * b, 1),
        };
        const work = pick.flops ? { flops: flops * pick.flops } : { bytes: bytes[pick.name] };
        return { ops: pick.ops(ops), work };
      }, { group: name, repeat: tier === PLAIN_TIER ? 1 : 100 });
    }
  }
}

benchLayer(
  "conv1 [32,1,28,28] 1->16 k4 s2",
  [32, 1, 28, 28],
  { inChannels: 1, outChannels: 16, kernelSize: 4, stride: 2 },
  false,
);
benchLayer(
  "conv2 [32,16,13,13] 16->32 k4 s2",
  [32, 16, 13, 13],
  { inChannels: 16, outChannels: 32, kernelSize: 4, stride: 2 },
  true,
);
