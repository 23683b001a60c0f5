/**
 * The CPU wing's packed handoffs (lib/cpu/handoff.ts): a Conv2d and the BatchNorm2d next to
 * it pass their tensors packed in groups of four images, with no pack and no copy between
 * them. The risks: a lane of an image past the batch leaking into the statistics or the
 * weight gradients (batches that are not a multiple of four), a plain tensor that nobody
 * writes any more being read, and the handoff silently not happening.
 */

import { assertClose } from "./util/assert_close.ts";
import { gpuTest, testRuntime, TIERS } from "./util/gpu.ts";
import { syntheticSplit } from "./util/synthetic.ts";
import { lenet, type Model, sequential } from "../lib/models.ts";
import { conv2d } from "../lib/layers/conv2d.ts";
import { batchnorm2d } from "../lib/layers/batchnorm2d.ts";
import { adaptiveAvgPool2d } from "../lib/layers/adaptive_avg_pool2d.ts";
import { flatten } from "../lib/layers/flatten.ts";
import { linear } from "../lib/layers/linear.ts";
import { avgPool2d } from "../lib/layers/pool2d.ts";
import { createTrainer } from "../lib/train.ts";
import { CPU_TIER } from "../lib/cpu/tier.ts";
import { IMAGE_SIDE } from "../lib/data_gpu.ts";
import { opName, readback } from "../lib/runtime.ts";
import { forwardSplit } from "../lib/infer.ts";

/** conv -> BN+ReLU -> conv -> BN -> pool -> linear: every kind of handoff, odd sizes. */
function chain() {
  return sequential("handoff", [
    ["features.0", conv2d({ inChannels: 1, outChannels: 6, kernelSize: 4, stride: 2 })],
    ["features.1", batchnorm2d(6, { relu: true })],
    ["features.3", conv2d({ inChannels: 6, outChannels: 5, kernelSize: 3, stride: 2 })],
    ["features.4", batchnorm2d(5)],
    ["features.6", adaptiveAvgPool2d()],
    ["classifier.0", flatten()],
    ["classifier.1", linear(5, 10)],
  ], { input: [1, IMAGE_SIDE, IMAGE_SIDE], pad: 0 });
}

/** LeNet-5's pattern: conv -> tanh+avg pool -> conv -> tanh+avg pool (odd planes) -> linear. */
function lenetLike() {
  return sequential("handoff5", [
    ["features.0", conv2d({ inChannels: 1, outChannels: 3, kernelSize: 3, padding: 1 })],
    ["features.1", avgPool2d({ kernelSize: 2, activation: "tanh" })],
    ["features.3", conv2d({ inChannels: 3, outChannels: 5, kernelSize: 2 })],
    ["features.4", avgPool2d({ kernelSize: 2, activation: "tanh" })],
    ["classifier.0", flatten()],
    ["classifier.1", linear(5 * 6 * 6, 10)],
  ], { input: [1, IMAGE_SIDE, IMAGE_SIDE], pad: 0 });
}

/** A pool first (plain input, packed output), then a conv. */
function poolFirst() {
  return sequential("handoff_pool", [
    ["features.0", avgPool2d({ kernelSize: 3, activation: "sigmoid" })],
    ["features.1", conv2d({ inChannels: 1, outChannels: 4, kernelSize: 3, stride: 2 })],
    ["classifier.0", flatten()],
    ["classifier.1", linear(4 * 4 * 4, 10)],
  ], { input: [1, IMAGE_SIDE, IMAGE_SIDE], pad: 0 });
}

const MODELS_HANDING_OVER: [string, () => Model][] = [
  ["conv/BatchNorm", chain],
  ["LeNet-5's conv/pool", lenetLike],
  ["pool first", poolFirst],
];

for (const [name, model] of MODELS_HANDING_OVER) {
  Deno.test(
    `handed-off tensors (${name}): the wing trains and evaluates as the plain tier at batches of 6 and 5`,
    gpuTest,
    () => trainsAlike(model),
  );
}

/** 2 epochs of 23 images on both tiers from the same start: losses, gradients, test pass. */
async function trainsAlike(model: () => Model) {
  {
    const device = await testRuntime();
    // 23 images at batch 6: steps of 6 (a group of four and a half one) and a last one of 5.
    const data = { train: syntheticSplit(23, 1), test: syntheticSplit(11, 2) };
    const config = {
      batchSize: 6,
      evalBatchSize: 6,
      lr: 1e-2,
      weightDecay: 1e-4,
      seed: 5,
      mean: 0.13,
      std: 0.31,
    };
    const [plain, wing] = await Promise.all(
      TIERS.map((tier) => createTrainer({ ...device, tier }, model(), data, config)),
    );
    const losses = [], grads: Float32Array[] = [];
    for (const trainer of [plain, wing]) {
      // The first step's gradients, from the same start: a conv bias before a BatchNorm has
      // a gradient of 0 but for rounding, which only a leaked lane would move.
      const first = async ({ batch }: { batch: number }) => {
        if (batch === 0) grads.push(await readback(trainer.rt, trainer.grads));
      };
      const epochs = [
        await trainer.trainEpoch(1, {}, { onStep: first }),
        await trainer.trainEpoch(2),
      ];
      losses.push(epochs.flatMap((e) => [...e.batches.loss]));
    }
    assertClose(grads[1], grads[0], { atol: 1e-6, rtol: 1e-4 }, "the first step's gradients");
    // f32 sums in other orders: a leaked lane or a stale tensor moves them by far more.
    assertClose(losses[1], losses[0], { atol: 0, rtol: 1e-5 }, "per-step losses");
    // The test pass from the same parameters and running statistics. (Not each tier's own:
    // a conv bias before a BatchNorm has a gradient of rounding noise alone, which AdamW
    // turns into steps of lr, and the running mean follows it.)
    wing.loadState(await plain.saveState());
    const [want, got] = [await plain.evaluate(), await wing.evaluate()];
    assertClose([got.loss], [want.loss], { atol: 0, rtol: 1e-5 }, "test loss");
    if (got.accuracy !== want.accuracy) {
      throw new Error(`accuracy ${got.accuracy} != ${want.accuracy}`);
    }
    // Every layer's output after eval, which writes the plain tensors the handoffs skip in
    // training (batches of 6 and 5: partial groups of four).
    const params = new Float32Array((await plain.saveState()).params);
    for (const { name, layer } of plain.model.layers) {
      if (layer.alias) continue;
      const options = { params, batchSize: 6, layer: name, mean: config.mean, std: config.std };
      const [a, b] = await Promise.all(
        [plain, wing].map((t) => forwardSplit(t.rt, t.model, data.test, options)),
      );
      assertClose(b.values, a.values, { atol: 1e-5, rtol: 1e-4 }, `eval output of ${name}`);
    }
  }
}

Deno.test(
  "the wing's seed step packs only its input: the rest is handed over or fused",
  gpuTest,
  async () => {
    const rt = { ...await testRuntime(), tier: CPU_TIER };
    const data = { train: syntheticSplit(64, 1), test: syntheticSplit(32, 2) };
    const config = { batchSize: 32, lr: 1e-3, weightDecay: 0, seed: 0, mean: 0.13, std: 0.31 };
    const trainer = await createTrainer(rt, lenet(), data, config);
    const names = trainer.stepOps.train.map(opName);
    const packs = names.filter((n) => n.endsWith(":pack"));
    const copies = names.filter((n) => n.startsWith("copy "));
    if (packs.length !== 1 || copies.length !== 2) {
      throw new Error(
        `expected 1 pack and 2 copies (x, x packed): ${names.join(", ")}`,
      );
    }
  },
);
