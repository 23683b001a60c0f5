/**
 * The page's one door to lib/: the runtime, the data, training, checkpoints, the forward pass
 * of a drawn digit, evaluation and t-SNE. The panels call these functions and never lib/
 * directly, so that a change of lib/'s API is met here alone.
 * @module
 */

import {
  buildGraph,
  createRuntime,
  createTrainer,
  decodeSafetensors,
  encodeSafetensors,
  evaluateLogits,
  type Evaluation,
  forwardSplit,
  loadStateDict,
  type Model,
  MODELS,
  type PassResult,
  readback,
  type Runtime,
  type Split,
  stateDict,
  submit,
  summaryRows,
  tensor,
  tsne,
  upload,
} from "../mod.ts";
import { IMAGE_PIXELS } from "../lib/data_gpu.ts";

export { confusionSvg, digitsSvg, scatterSvg } from "../lib/io/charts.ts";
export type { Evaluation, PassResult, Runtime, Split };

/** The inputs' normalization: x = (pixel / 255 - mean) / std. */
export interface Normalization {
  mean: number;
  std: number;
}

/** The notebook's MNIST constants: for checkpoints that do not record theirs. */
const NOTEBOOK_NORMALIZATION: Normalization = { mean: 0.1307, std: 0.3081 };

/** A model with its parameters: trained here, loaded from a run, or dropped on the page. */
export interface Net {
  model: Model;
  params: Float32Array<ArrayBuffer>;
  /** Optimizer steps behind these parameters. */
  steps: number;
  /** Where it came from, for the page: "trained here", "run 2026-...", "model.safetensors". */
  source: string;
  /** The checkpoint's metadata (train's: model, epoch, options, metrics...). */
  metadata: Record<string, string>;
  /** The normalization it was trained with. */
  normalization: Normalization;
}

/** The models the page trains, with what the page says of them. */
export const MODEL_CHOICES = [
  { name: "lenet", label: "The seed's LeNet (2 convs + BatchNorm, 8,922 parameters)" },
  { name: "lenet5", label: "LeNet-5 (LeCun 1998: tanh, average pooling, 61,706 parameters)" },
];

/**
 * The WebGPU device with the kernel tier `kernels` (the page's `?kernels=`; auto: the adapter's),
 * or an error that says what is missing and how to get it.
 */
export function startRuntime(kernels: string | null): Promise<Runtime> {
  if (kernels !== null && kernels !== "auto" && kernels !== "plain" && kernels !== "cpu") {
    throw new Error(`?kernels=${kernels}: expected auto, plain or cpu`);
  }
  return createRuntime("auto", { kernels: kernels ?? "auto" });
}

/** The kernel tier of the runtime: "plain" or "cpu". */
export function kernelTier(rt: Runtime): string {
  return rt.tier.name;
}

/** What the page says about the adapter. */
export function describeAdapter(rt: Runtime): string {
  const name = rt.description !== "unknown adapter" ? rt.description : rt.architecture;
  return `WebGPU on ${rt.vendor ? `${rt.vendor} ` : ""}${name}` +
    (rt.isFallback ? " (a software adapter: training is slow)" : "") +
    `, ${kernelTier(rt)} kernels`;
}

/** One split of MNIST from the server's data/mnist/<split>.safetensors. */
export async function loadSplit(
  split: "train" | "test",
): Promise<Split & { normalization: Normalization }> {
  const url = `/data/mnist/${split}.safetensors`;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const file = decodeSafetensors(new Uint8Array(await response.arrayBuffer()), { name: url });
  const images = file.tensors.get("images"), labels = file.tensors.get("labels");
  if (images?.dtype !== "U8" || labels?.dtype !== "U8") {
    throw new Error(`${url}: expected U8 "images" and "labels"`);
  }
  return {
    images: images.data as Uint8Array,
    labels: labels.data as Uint8Array,
    count: labels.shape[0],
    // download records the training pixels' mean and std in both files.
    normalization: normalizationOf(file.metadata, url),
  };
}

/** The mean and std a file's metadata records, or the notebook's when it records none. */
function normalizationOf(metadata: Record<string, string>, name: string): Normalization {
  if (metadata.mean === undefined && metadata.std === undefined) return NOTEBOOK_NORMALIZATION;
  const mean = Number(metadata.mean), std = Number(metadata.std);
  if (!Number.isFinite(mean) || !Number.isFinite(std) || !(std > 0)) {
    throw new Error(`${name}: its "mean" and "std" metadata must be numbers, std > 0`);
  }
  return { mean, std };
}

/** The first `count` images of a split (a view, no copy). */
export function firstImages(split: Split, count: number): Split {
  const n = Math.min(count, split.count);
  return {
    images: split.images.subarray(0, n * IMAGE_PIXELS),
    labels: split.labels.subarray(0, n),
    count: n,
  };
}

/** What the page's form asks for. */
export interface TrainSettings {
  model: string;
  epochs: number;
  batchSize: number;
  lr: number;
  /** Training images per epoch (the first ones of the split). */
  images: number;
}

/** Figures of a training pass so far, as the progress hook gives them. */
export interface TrainProgress {
  epoch: number;
  /** Batches done and in the epoch. */
  done: number;
  total: number;
  images: number;
  /** The epoch's mean loss and accuracy so far. */
  loss: number;
  accuracy: number;
}

/** How the page follows a training run. */
export interface TrainEvents {
  onProgress(p: TrainProgress): void;
  onEpoch(epoch: number, train: PassResult, test: PassResult): void;
  /** Checked between GPU submits: "pause" and "stop" end the current pass there. */
  control(): "run" | "pause" | "stop";
  /**
   * Called when paused with the net as it is: resolves when training may go on ("run") or
   * must end ("stop").
   */
  waitWhilePaused(net: Net): Promise<"run" | "stop">;
}

/**
 * Trains a fresh model with the seed's AdamW (weight decay 1e-4, seed 0), epoch after epoch,
 * evaluating on the test set after each; returns the net it has when done or stopped.
 * A paused epoch starts over when resumed (the trainer runs whole epochs); the steps it did
 * before the pause stay in the parameters.
 */
export async function train(
  rt: Runtime,
  data: { train: Split; test: Split; normalization: Normalization },
  settings: TrainSettings,
  events: TrainEvents,
): Promise<Net> {
  const model = MODELS[settings.model]();
  const config = {
    batchSize: settings.batchSize,
    lr: settings.lr,
    weightDecay: 1e-4,
    seed: 0,
    ...data.normalization,
  };
  const trainer = await createTrainer(rt, model, {
    train: firstImages(data.train, settings.images),
    test: data.test,
  }, config);
  const records: Record<string, number>[] = [];
  const options = {
    model: settings.model,
    dataset: "mnist",
    epochs: settings.epochs,
    batchSize: settings.batchSize,
    lr: settings.lr,
    weightDecay: config.weightDecay,
    seed: config.seed,
    limit: settings.images,
    device: "auto",
  };
  // The net as it is now, with the metadata train writes.
  const snapshot = async (): Promise<Net> => ({
    model,
    params: new Float32Array(await readback(rt, trainer.params)),
    steps: trainer.steps,
    source: "trained in this page",
    normalization: data.normalization,
    metadata: {
      format: "pt",
      model: model.name,
      epoch: String(records.length),
      steps: String(trainer.steps),
      options: JSON.stringify(options),
      ...(records.length > 0 ? { metrics: JSON.stringify(records.at(-1)) } : {}),
      adapter: describeAdapter(rt),
      kernels: kernelTier(rt),
      mean: String(data.normalization.mean),
      std: String(data.normalization.std),
    },
  });
  for (let epoch = 1; epoch <= settings.epochs; epoch++) {
    const result = await trainer.trainEpoch(epoch, {
      refreshSeconds: 0.5,
      shouldStop: () => events.control() !== "run",
      onProgress: (p) => events.onProgress({ epoch, ...p }),
    });
    if (events.control() === "stop") break;
    if (events.control() === "pause") {
      if ((await events.waitWhilePaused(await snapshot())) === "stop") break;
      epoch--; // the interrupted epoch again, from its first batch
      continue;
    }
    const test = await trainer.evaluate();
    records.push({
      epoch,
      train_loss: result.loss,
      train_acc: result.accuracy,
      test_loss: test.loss,
      test_acc: test.accuracy,
      train_seconds: Number(result.seconds.toFixed(3)),
      train_images_per_s: Math.round(result.images / result.seconds),
      test_seconds: Number(test.seconds.toFixed(3)),
    });
    events.onEpoch(epoch, result, test);
  }
  return await snapshot();
}

/** The net as model.safetensors, the file train writes (PyTorch loads it with strict=True). */
export function checkpointBytes(net: Net): Uint8Array {
  return encodeSafetensors(stateDict(net.model, net.params, net.steps), net.metadata);
}

/**
 * A net from the bytes of a model.safetensors. Throws, naming `name`, when the file is not
 * safetensors, names a model we do not know, or is not a checkpoint of its model.
 */
export function readCheckpoint(bytes: Uint8Array, name: string, source = name): Net {
  let file;
  try {
    file = decodeSafetensors(bytes, { name });
  } catch (e) {
    const reason = (e as Error).message.replace(`${name}: `, "");
    throw new Error(`${name} is not a safetensors file (${reason}).`);
  }
  if (!file.tensors.has("features.0.weight")) {
    const names = [...file.tensors.keys()];
    throw new Error(
      `${name} is not a model checkpoint: it holds ${
        names.length > 0
          ? names.slice(0, 5).join(", ") + (names.length > 5 ? ", ..." : "")
          : "no tensor"
      }, where a model.safetensors of deno task train or of this page holds features.0.weight, ...`,
    );
  }
  const modelName = file.metadata.model ?? guessModel(file.tensors);
  const make = MODELS[modelName];
  if (!make) {
    throw new Error(
      `${name}: unknown model "${modelName}" (this page knows ${Object.keys(MODELS).join(", ")})`,
    );
  }
  let options = {};
  try {
    options = JSON.parse(file.metadata.options ?? "{}");
  } catch {
    throw new Error(`${name}: its "options" metadata is not JSON`);
  }
  const model = make(options);
  const { params } = loadStateDict(model, file, name);
  // The step count is train's `steps` metadata (0 for a file from elsewhere).
  const steps = Number(file.metadata.steps ?? 0);
  const normalization = normalizationOf(file.metadata, name);
  return { model, params, steps, source, metadata: { ...file.metadata }, normalization };
}

/** A checkpoint without our metadata (saved by PyTorch): its model from its first tensor. */
function guessModel(tensors: Map<string, { shape: number[] }>): string {
  const first = tensors.get("features.0.weight")?.shape[0];
  return first === 6 ? "lenet5" : "lenet";
}

/** One layer's output for the drawn digit: [channels, height, width]. */
export interface FeatureMap {
  name: string;
  type: string;
  shape: number[];
  values: Float32Array;
}

/** The forward pass of one image, kept on the device for the strokes of a drawing. */
export interface Inspector {
  /** Class probabilities and every conv layer's output for a 28x28 image in [0, 1]. */
  run(pixels: Float32Array): Promise<{ probabilities: Float32Array; maps: FeatureMap[] }>;
  destroy(): void;
}

/** Builds the batch-1 eval graph of `net` once; `run` then uploads, submits and reads back. */
export async function createInspector(rt: Runtime, net: Net): Promise<Inspector> {
  const { model } = net;
  const params = tensor(rt, [model.layout.size], { label: "inspector params" });
  upload(rt, params, net.params);
  const grads = tensor(rt, [model.layout.size], { label: "inspector grads (unused)" });
  const graph = await buildGraph(rt, model, { batch: 1, params, grads });
  const convs = model.layers.filter(({ layer }) => layer.type.startsWith("Conv2d"));
  const width = graph.x.shape[3], pad = model.pad;
  const { mean, std } = net.normalization;
  return {
    async run(pixels) {
      const x = new Float32Array(graph.x.size);
      for (let y = 0; y < 28; y++) {
        for (let i = 0; i < 28; i++) {
          x[(y + pad) * width + i + pad] = (pixels[y * 28 + i] - mean) / std;
        }
      }
      upload(rt, graph.x, x);
      submit(rt, graph.eval);
      const logits = await readback(rt, graph.logits);
      const maps: FeatureMap[] = [];
      for (const { name, layer } of convs) {
        const out = graph.outputs.get(name)!;
        maps.push({
          name,
          type: layer.type,
          shape: out.shape.slice(1),
          values: await readback(rt, out),
        });
      }
      return { probabilities: softmax(logits), maps };
    },
    destroy() {
      params.buffer.destroy();
      grads.buffer.destroy();
    },
  };
}

/** The model's layers as PyTorch's summary lists them: name, type, output shape, parameters. */
export function layerRows(
  net: Net,
): { name: string; type: string; shape: string; params: number }[] {
  return summaryRows(net.model, 1).map((r) => ({
    name: r.name,
    type: r.type,
    shape: `[${r.outputShape.slice(1).join(", ")}]`,
    params: r.params,
  }));
}

/** conv1's weights [out, in, k, k], for the filters panel. */
export function firstFilters(net: Net): { shape: number[]; values: Float32Array } {
  const entry = net.model.layout.entries.find((e) => e.name === "features.0.weight")!;
  return {
    shape: entry.shape,
    values: net.params.subarray(entry.offset, entry.offset + entry.size),
  };
}

/** Logits of every image of `split` (eval mode), and the seed's figures and confusion matrix. */
export async function evaluate(
  rt: Runtime,
  net: Net,
  split: Split,
): Promise<{ logits: Float32Array; evaluation: Evaluation }> {
  const { values } = await forwardSplit(rt, net.model, split, {
    params: net.params,
    ...net.normalization,
  });
  return { logits: values, evaluation: evaluateLogits(values, split.labels, { classes: 10 }) };
}

/** t-SNE of `n` rows of `dim` values on the GPU (the seed's settings), [n, 2]. */
export async function embed(
  rt: Runtime,
  values: Float32Array,
  options: { n: number; dim: number; onProgress?: (iteration: number) => void },
): Promise<Float32Array> {
  const { points } = await tsne(rt, values, {
    n: options.n,
    dim: options.dim,
    onProgress: options.onProgress,
  });
  return points;
}

function softmax(logits: Float32Array): Float32Array {
  const max = Math.max(...logits);
  const e = logits.map((z) => Math.exp(z - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}
