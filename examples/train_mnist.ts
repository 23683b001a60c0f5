/**
 * The seed's LeNet trained on MNIST with the public API, as tinygrad's beautiful_mnist.py:
 * the runtime, the data, the model, the trainer, the loop. MNIST is downloaded to
 * `<data>/mnist/` when it is not there.
 *
 *     deno run -A examples/train_mnist.ts [--epochs 2] [--limit N] [--data data]
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  createRuntime,
  createTrainer,
  IMAGE_PIXELS,
  lenet,
  type PassHooks,
  type Split,
} from "../mod.ts";
// Deno only (files and network): mod.ts, which runs in a browser too, leaves it out.
import { loadDataset, prepareDataset } from "../lib/io/mnist.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    epochs: { type: "string", default: "2" },
    limit: { type: "string", default: "60000" },
    data: { type: "string", default: "data" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log("usage: deno run -A examples/train_mnist.ts [--epochs 2] [--limit N] [--data dir]");
  console.log("  --limit N: train and test on the first N images of each split");
  Deno.exit(0);
}
const epochs = Number(values.epochs), limit = Number(values.limit);
if (!(epochs >= 1 && limit >= 1)) throw new Error("--epochs and --limit must be numbers >= 1");

const rt = await createRuntime();
console.log(`adapter: ${rt.description}`);
const { train, test, normalization } = await loadDataset(values.data, "mnist").catch(async () => {
  await prepareDataset({ dataset: "mnist", out: values.data }); // the first time: download
  return loadDataset(values.data, "mnist");
});
const first = (s: Split, n = Math.min(limit, s.count)): Split => ({
  images: s.images.subarray(0, n * IMAGE_PIXELS),
  labels: s.labels.subarray(0, n),
  count: n,
});

const trainer = await createTrainer(rt, lenet(), { train: first(train), test: first(test) }, {
  batchSize: 32,
  lr: 1e-3,
  weightDecay: 1e-4,
  seed: 0,
  ...normalization, // the pixels' mean and std, recorded by the download (MNIST's 0.1307, 0.3081)
});
const progress = (label: string): PassHooks => ({
  onProgress: (p) => console.error(`${label} ${p.done}/${p.total} loss ${p.loss.toFixed(3)}`),
  refreshSeconds: 5,
});
for (let epoch = 1; epoch <= epochs; epoch++) {
  const tr = await trainer.trainEpoch(epoch, progress(`epoch ${epoch} train`));
  const te = await trainer.evaluate();
  console.log(
    `epoch ${epoch}: train loss ${tr.loss.toFixed(4)}, ${Math.round(tr.images / tr.seconds)} ` +
      `images/s; test accuracy ${te.accuracy.toFixed(2)}%`,
  );
}
