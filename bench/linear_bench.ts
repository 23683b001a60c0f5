/**
 * Linear throughput at LeNet-5's three shapes (C5 as the Linear it runs as, 400 -> 120; F6,
 * 120 -> 84; the output, 84 -> 10) and the seed's 32 -> 10, batch 32: the layer's forward and
 * backward op lists in the CPU wing (lib/cpu/linear.ts, with the copies to its texture
 * mirrors) beside the plain tier's (lib/layers/linear.ts), plus an eval batch of 1000 through
 * 84 -> 10. Each call is the layer's whole op list, copies included; 200 calls a submit. A
 * multiply-add counts 2: forward 2*N*IN*OUT; backward 2*N*IN*OUT each for dx and
 * dweight, plus N*OUT adds for dbias. Read the GFLOP/s against bench/matmul_bench.ts.
 * @module
 */

import { gpuBench } from "./util.ts";
import { layerOps } from "./layer_ops.ts";
import { createRuntime } from "../lib/device.ts";
import { linear } from "../lib/layers/linear.ts";
import { PLAIN_TIER, type Tier } from "../lib/tier.ts";
import { buildLinear } from "../lib/cpu/linear.ts";

const rt = createRuntime("auto");
/**
 * The wing's Linear at every size (the CPU tier builds it only from LINEAR_WING_MIN_MACS on:
 * 84 -> 10 and 32 -> 10 at batch 32 are below, and run plain in training).
 */
const WING: Tier = { name: "cpu", build: buildLinear };
/** Calls per submit: enough that the ~10 ms wait for the queue weighs ~0.05 ms a call. */
const repeat = 200;

for (const [batch, ins, outs] of [[32, 400, 120], [32, 120, 84], [32, 84, 10], [32, 32, 10]]) {
  const mac = 2 * batch * ins * outs;
  const group = `linear [${batch},${ins}] -> ${outs}`;
  for (const tier of [WING, PLAIN_TIER]) {
    gpuBench(`${group} forward (${tier.name})`, rt, async (rt) => ({
      ops: (await layerOps(rt, linear(ins, outs), [batch, ins], { tier })).train,
      work: { flops: mac },
    }), { group, repeat });
    gpuBench(`${group} backward (${tier.name})`, rt, async (rt) => ({
      ops: (await layerOps(rt, linear(ins, outs), [batch, ins], { tier })).backward,
      work: { flops: 2 * mac + batch * outs },
    }), { group, repeat });
  }
}
for (const tier of [WING, PLAIN_TIER]) {
  gpuBench(`linear eval [1000,84] -> 10 forward (${tier.name})`, rt, async (rt) => ({
    ops: (await layerOps(rt, linear(84, 10), [1000, 84], { tier })).eval,
    work: { flops: 2 * 1000 * 84 * 10 },
  }), { group: "linear eval", repeat });
}
