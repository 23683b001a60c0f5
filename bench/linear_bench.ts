import { gpuBench } from "./util.ts";
import { layerOps } from "./layer_ops.ts";
import { createRuntime } from "../lib/device.ts";
import { linear } from "../lib/layers/linear.ts";

const rt = createRuntime("auto");

/** Builds `layer` over fresh tensors for an input of `shape` (zero parameters: fine for timing). */
// The seed's Linear(32, 10) at batch 32, LeNet-5's Linear(120, 84) at batch 32, and an eval
// batch of 1000 through LeNet-5's Linear(84, 10). A multiply-add counts 2: forward 2*N*IN*OUT;
// backward 2*N*IN*OUT each for dx and dweight, plus N*OUT adds for dbias.
for (const [batch, ins, outs] of [[32, 32, 10], [32, 120, 84], [1000, 84, 10]]) {
  const mac = 2 * batch * ins * outs;
  gpuBench(`linear forward [${batch},${ins}] -> ${outs}`, rt, async (rt) => ({
    ops: (await layerOps(rt, linear(ins, outs), [batch, ins])).train,
    work: { flops: mac },
  }));
  if (batch > 32) continue; // an eval batch has no backward
  gpuBench(`linear backward [${batch},${ins}] -> ${outs}`, rt, async (rt) => ({
    ops: (await layerOps(rt, linear(ins, outs), [batch, ins])).backward,
    work: { flops: 2 * mac + batch * outs },
  }));
}
