/**
 * Conv2d kernel throughput at the seed model's shapes (batch 32): conv1 1->16 k4 s2 on 28x28
 * (its backward has no dx: it reads the image), conv2 16->32 k4 s2 on 13x13; each entry
 * point of kernels/conv2d.wgsl, beside the plain kernels/conv2d_naive.wgsl it must beat.
 * LeNet-5's convolutions (5x5) follow, and its first one in eval at a batch of 1000.
 * @module
 */

import { gpuBench } from "./util.ts";
import { createRuntime, type Runtime, tensor } from "../lib/runtime.ts";
import { conv2d, type Conv2dOptions } from "../lib/layers/conv2d.ts";

const rt = createRuntime("auto");

/** The layer's ops for input `x` [N,C,H,W], on zero-filled tensors. */
async function layerOps(rt: Runtime, x: number[], options: Conv2dOptions) {
  const layer = conv2d(options);
  const yShape = layer.outputShape(x);
  const [k, c, r] = [options.outChannels, options.inChannels, options.kernelSize];
  const ops = await layer.build({
    rt,
    x: tensor(rt, x, { label: "x" }),
    y: tensor(rt, yShape, { label: "y" }),
    dy: tensor(rt, yShape, { label: "dy" }),
    dx: tensor(rt, x, { label: "dx" }),
    params: { weight: tensor(rt, [k, c, r, r]), bias: tensor(rt, [k]) },
    grads: { weight: tensor(rt, [k, c, r, r]), bias: tensor(rt, [k]) },
  });
  return { ops, flops: layer.flops!(x) };
}

/** Registers forward, backward_input (unless `noInput`) and backward_weight for one layer. */
function benchLayer(
  name: string,
  x: number[],
  options: Conv2dOptions & { noInput?: boolean; evalOnly?: boolean },
): void {
  const entries = ["forward"];
  if (!options.evalOnly && !options.noInput) entries.push("backward_input");
  if (!options.evalOnly) entries.push("backward_weight");
  for (const kernels of ["naive", "fast"] as const) {
    for (const entry of entries) {
      gpuBench(`${name} ${entry} (${kernels})`, rt, async (rt) => {
        const { ops, flops } = await layerOps(rt, x, { ...options, kernels });
        const op = entry === "forward"
          ? ops.train[0]
          : entry === "backward_weight"
          ? ops.backward[ops.backward.length - 1]
          : ops.backward[0];
        return { ops: [op], work: { flops } };
      }, { group: name });
    }
  }
}

benchLayer("conv1 [32,1,28,28] 1->16 k4 s2", [32, 1, 28, 28], {
  inChannels: 1,
  outChannels: 16,
  kernelSize: 4,
  stride: 2,
  noInput: true,
});
benchLayer("conv2 [32,16,13,13] 16->32 k4 s2", [32, 16, 13, 13], {
  inChannels: 16,
  outChannels: 32,
  kernelSize: 4,
  stride: 2,
});
