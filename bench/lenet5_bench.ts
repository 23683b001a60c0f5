/**
 * LeNet-5 at batch 32: where the zero border of 2 is cheaper (written by the data gather,
 * then C1 on 32x32 with no padding, or C1 on 28x28 with padding 2: the same function and the
 * same weights), then whole training steps (gather, forward, loss, backward, AdamW) in
 * images/s for the plain model and `--c3 lecun`, and an eval step. Uses data/mnist when
 * `deno task download` has written it, else MNIST-shaped random bytes.
 * @module
 */

import { gpuBench } from "./util.ts";
import { benchData } from "./bench_data.ts";
import { type Runtime, tensor, upload } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { random } from "../lib/random.ts";
import { meanStd } from "../lib/io/mnist.ts";
import { gatherOp, uploadDataset } from "../lib/data_gpu.ts";
import { createStepState } from "../lib/step_state.ts";
import { conv2d } from "../lib/layers/conv2d.ts";
import { lenet5, type ModelOptions } from "../lib/models.ts";
import { createTrainer, type Trainer } from "../lib/train.ts";

const rt = createRuntime("auto");
const BATCH = 32, IMAGES = 60000;

/** The gather of one batch with a border of `pad`, and C1's forward and backward_weight. */
async function firstLayer(rt: Runtime, pad: number) {
  const rng = random(1);
  const images = new Uint8Array(IMAGES * 784).map(() => rng.int(256));
  const labels = new Uint8Array(IMAGES).map(() => rng.int(10));
  const dataset = uploadDataset(rt, images, labels, { label: "bench" });
  const order = tensor(rt, [IMAGES], { dtype: "u32" });
  upload(rt, order, new Uint32Array(IMAGES).map((_, i) => (i * 7919) % IMAGES));
  const state = await createStepState(rt);
  const side = 28 + 2 * pad;
  const x = tensor(rt, [BATCH, 1, side, side]);
  const gather = await gatherOp(rt, {
    dataset,
    order,
    state: state.tensor,
    x,
    labels: tensor(rt, [BATCH], { dtype: "u32" }),
    batchSize: BATCH,
    ...meanStd(images), // the random bytes' own
    pad,
  });
  const layer = conv2d({ inChannels: 1, outChannels: 6, kernelSize: 5, padding: 2 - pad });
  const y = [BATCH, 6, 28, 28];
  const ops = await layer.build({
    rt,
    x,
    y: tensor(rt, y),
    dy: tensor(rt, y),
    dx: null,
    params: { weight: tensor(rt, [6, 1, 5, 5]), bias: tensor(rt, [6]) },
    grads: { weight: tensor(rt, [6, 1, 5, 5]), bias: tensor(rt, [6]) },
  });
  // Conv2d's forward may be several dispatches (the fast one stages its weights first).
  return { gather, forward: ops.train, backwardWeight: ops.backward.at(-1)! };
}

for (const pad of [2, 0]) {
  const where = pad === 2 ? "gather pad 2, C1 on 32x32" : "gather pad 0, C1 padding 2";
  const group = "padding";
  gpuBench(`${where}: gather`, rt, async (rt) => ({
    ops: [(await firstLayer(rt, pad)).gather],
    work: { images: BATCH },
  }), { group });
  gpuBench(`${where}: C1 forward`, rt, async (rt) => ({
    ops: (await firstLayer(rt, pad)).forward,
    work: { flops: 2 * BATCH * 6 * 28 * 28 * 25 },
  }), { group });
  gpuBench(`${where}: C1 backward_weight`, rt, async (rt) => ({
    ops: [(await firstLayer(rt, pad)).backwardWeight],
    work: { flops: 2 * BATCH * 6 * 28 * 28 * 25 },
  }), { group });
  gpuBench(`${where}: all three`, rt, async (rt) => {
    const l = await firstLayer(rt, pad);
    return { ops: [l.gather, ...l.forward, l.backwardWeight], work: { images: BATCH } };
  }, { group });
}

const trainers = new Map<string, Promise<Trainer>>();
function trainer(options: ModelOptions): Promise<Trainer> {
  const key = JSON.stringify(options);
  if (!trainers.has(key)) {
    trainers.set(
      key,
      (async () => {
        const data = await benchData();
        return createTrainer(await rt, lenet5(options), data, {
          batchSize: BATCH,
          lr: 1e-3,
          weightDecay: 1e-4,
          seed: 0,
          ...data.normalization,
        });
      })(),
    );
  }
  return trainers.get(key)!;
}

// Multiply-adds per image of the forward: C1 117,600, C3 240,000 (150,000 with the
// table), C5 48,000, F6 10,080, output 840; a training step is about 3 times the forward.
const forwardFlops = (c3: number) => 2 * (117600 + c3 + 48000 + 10080 + 840);
for (
  const [name, options, c3] of [["full", {}, 240000], ["lecun", { c3: "lecun" }, 150000]] as const
) {
  gpuBench(`lenet5 (c3 ${name}) training step, batch 32`, rt, async () => ({
    ops: (await trainer(options)).stepOps.train,
    work: { images: BATCH, flops: 3 * BATCH * forwardFlops(c3) },
  }), { repeat: 20, group: "step" });
}
gpuBench("lenet5 eval step, batch 32", rt, async () => ({
  ops: (await trainer({})).stepOps.eval,
  work: { images: BATCH, flops: BATCH * forwardFlops(240000) },
}), { repeat: 20, group: "step" });
