/**
 * The parts of a training step around the layers, at the seed's shapes (batch 32):
 * the batch gather out of the 60,000 MNIST-sized images uploaded once, the loss with its
 * gradient, AdamW over the seed model's 8,922 parameters (padded to 9,344), and the step
 * counter. All are tiny: their time per call is mostly the cost of one dispatch.
 */

import { gpuBench } from "./util.ts";
import { tensor, upload } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { random } from "../lib/random.ts";
import { meanStd } from "../lib/io/mnist.ts";
import { gatherOp, uploadDataset } from "../lib/data_gpu.ts";
import { createMetrics, crossEntropy } from "../lib/layers/cross_entropy.ts";
import { createAdamW } from "../lib/adamw.ts";
import { createStepState } from "../lib/step_state.ts";

const rt = createRuntime("auto");
const BATCH = 32, CLASSES = 10, IMAGES = 60000, PARAMS = 9344;

for (const pad of [0, 2]) {
  const side = 28 + 2 * pad;
  gpuBench(`gather: [32,1,${side},${side}] of 60,000 images, pad ${pad}`, rt, async (rt) => {
    const rng = random(1);
    const images = new Uint8Array(IMAGES * 28 * 28).map(() => rng.int(256));
    const labels = new Uint8Array(IMAGES).map(() => rng.int(10));
    const dataset = uploadDataset(rt, images, labels, { label: "bench" });
    const order = tensor(rt, [IMAGES], { dtype: "u32" });
    upload(rt, order, new Uint32Array(IMAGES).map((_, i) => (i * 7919) % IMAGES));
    const state = await createStepState(rt);
    const x = tensor(rt, [BATCH, 1, side, side]);
    const y = tensor(rt, [BATCH], { dtype: "u32" });
    const op = await gatherOp(rt, {
      dataset,
      order,
      state: state.tensor,
      x,
      labels: y,
      batchSize: BATCH,
      ...meanStd(images), // the random bytes' own
      pad,
    });
    // Pixels and order read, x and labels written.
    const bytes = BATCH * (28 * 28 + 4 + 4 + 4 * side * side + 4);
    return { ops: [op], work: { bytes } };
  });
}

for (const train of [true, false]) {
  const entry = train ? "forward_backward" : "forward";
  gpuBench(`cross_entropy ${entry}: [32,10]`, rt, async (rt) => {
    const state = await createStepState(rt);
    const logits = tensor(rt, [BATCH, CLASSES]);
    const rng = random(2);
    upload(rt, logits, new Float32Array(BATCH * CLASSES).map(() => rng.uniform(-3, 3)));
    const labels = tensor(rt, [BATCH], { dtype: "u32" });
    const dlogits = train ? tensor(rt, [BATCH, CLASSES]) : null;
    const metrics = createMetrics(rt, 1);
    const op = await crossEntropy(rt, { logits, labels, dlogits, metrics, state: state.tensor });
    const bytes = BATCH * CLASSES * 4 * (train ? 2 : 1) + BATCH * 4 + 8;
    return { ops: [op], work: { bytes } };
  });
}

gpuBench(`adamw step: ${PARAMS.toLocaleString("en")} floats`, rt, async (rt) => {
  const state = await createStepState(rt);
  const params = tensor(rt, [PARAMS]);
  const grads = tensor(rt, [PARAMS]);
  const rng = random(3);
  upload(rt, grads, new Float32Array(PARAMS).map(() => rng.uniform(-1, 1)));
  const adamw = await createAdamW(rt, {
    params,
    grads,
    state: state.tensor,
    n: PARAMS,
    weightDecay: 1e-4,
  });
  // p, g, m, v read; p, m, v written.
  return { ops: [adamw.op], work: { bytes: 7 * 4 * PARAMS } };
});

gpuBench("step advance_train: 2 u32", rt, async (rt) => {
  const state = await createStepState(rt);
  return { ops: [state.advanceTrain], work: { bytes: 16 } };
});
