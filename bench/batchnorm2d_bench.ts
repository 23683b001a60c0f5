import { gpuBench } from "./util.ts";
import { layerOps } from "./layer_ops.ts";
import { numel } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { batchnorm2d } from "../lib/layers/batchnorm2d.ts";

const rt = createRuntime("auto");

/** Builds `layer` over fresh tensors for an input of `shape` (zero parameters: fine for timing). */
// The seed's two BatchNorm2d layers at batch 32, each followed by a ReLU (fused).
// Bytes are the compulsory traffic: forward reads x and writes y (the training forward reads
// x twice, from its texture mirror); backward reads x and dy (the ReLU mask is recomputed
// from x, not read from y) and writes dx (it reads x and dy twice, from their mirrors).
for (const [name, shape] of [["bn1", [32, 16, 13, 13]], ["bn2", [32, 32, 5, 5]]] as const) {
  const n = numel(shape);
  const layer = () => batchnorm2d(shape[1], { relu: true });
  gpuBench(`batchnorm2d+relu ${name} train_forward [${shape}]`, rt, async (rt) => ({
    ops: (await layerOps(rt, layer(), [...shape])).train,
    work: { bytes: 8 * n },
  }));
  gpuBench(`batchnorm2d+relu ${name} eval_forward [${shape}]`, rt, async (rt) => ({
    ops: (await layerOps(rt, layer(), [...shape])).eval,
    work: { bytes: 8 * n },
  }));
  gpuBench(`batchnorm2d+relu ${name} backward [${shape}]`, rt, async (rt) => ({
    ops: (await layerOps(rt, layer(), [...shape])).backward,
    work: { bytes: 12 * n },
  }));
}
