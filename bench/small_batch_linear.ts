/**
 * A slowdown of Vulkan (lavapipe) at small batches, found while profiling: a Linear's backward
 * submitted alternately with another dispatch (here the step counter's advance) costs 3-12 ms
 * a pair at batch 4-16, against ~0.6 ms (the submit's fixed cost, amortized) on GL, or at batch
 * 32, or once a batch-32 Linear has been built in the same process too. It makes a training
 * step at batch 4 take 5.4 ms on Vulkan against 1.5 ms on GL. Not a test: prints ms per call.
 *
 * Usage: DENO_WEBGPU_BACKEND=vulkan|gl deno run -A bench/small_batch_linear.ts [batches]
 *   (batches comma-separated, default 4; try 4 and then 4,32)
 * @module
 */

import { idle, type Op, submit, tensor } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { linear } from "../lib/layers/linear.ts";
import { createStepState } from "../lib/step_state.ts";

const batches = (Deno.args[0] ?? "4").split(",").map(Number);
const rt = await createRuntime("auto", { kernels: "plain" });
const state = await createStepState(rt);

/** Linear(32, 10)'s ops at `batch`, over fresh tensors. */
function build(batch: number) {
  const t = (shape: number[]) => tensor(rt, shape);
  return linear(32, 10).build({
    rt,
    x: t([batch, 32]),
    y: t([batch, 10]),
    dy: t([batch, 10]),
    dx: t([batch, 32]),
    params: { weight: t([10, 32]), bias: t([10]) },
    grads: { weight: t([10, 32]), bias: t([10]) },
  });
}

/** ms per call of `ops`, submitted `times` times over in one submit. */
async function timed(ops: Op[], times: number): Promise<number> {
  const t0 = performance.now();
  submit(rt, ops, times);
  await idle(rt);
  return (performance.now() - t0) / times;
}

const pairs: [string, Op[]][] = [];
for (const batch of batches) {
  const ops = await build(batch);
  pairs.push([`batch ${batch}: backward + advance`, [...ops.backward, state.advanceTrain]]);
  pairs.push([`batch ${batch}: forward + advance`, [...ops.train, state.advanceTrain]]);
}
const samples = new Map<string, number[]>(pairs.map(([name]) => [name, []]));
for (const [, ops] of pairs) await timed(ops, 3);
for (let trial = 0; trial < 5; trial++) {
  for (const [name, ops] of pairs) samples.get(name)!.push(await timed(ops, 20));
}
console.log(`${rt.description}, ${Deno.env.get("DENO_WEBGPU_BACKEND") ?? "default backend"}`);
for (const [name, s] of samples) {
  console.log(`${name}: ${s.sort((a, b) => a - b)[2].toFixed(3)} ms a call (median of 5)`);
}
