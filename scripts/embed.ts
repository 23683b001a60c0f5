/**
 * `deno task embed`: the notebook's last section. The model's outputs (logits, or the pooled
 * features with --layer features) for the first training images, projected to 2-D by t-SNE
 * (perplexity 30, 300 iterations, learning rate 200, RNG seed 42), on the GPU by default;
 * writes runs/<run>/embed/embeddings.safetensors and tsne.svg.
 * @module
 */

import { Command, Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import { forwardSplit } from "../lib/infer.ts";
import { tsne } from "../lib/tsne/tsne.ts";
import { tsneJs } from "../lib/tsne/tsne_js.ts";
import { CLASS_NAMES, type DatasetName, loadDataset } from "../lib/io/mnist.ts";
import { writeFileAtomic, writeSafetensorsFile } from "../lib/io/files.ts";
import { scatterSvg } from "../lib/io/charts.ts";
import { loadRun, newestRun } from "./run_folder.ts";
import {
  dataOption,
  datasetOption,
  deviceOption,
  kernelsOption,
  nonNegativeInt,
  openRuntime,
  positiveInt,
  realNumber,
  wholeNumber,
} from "./cli_options.ts";
import { progressBar, runMain } from "./terminal.ts";
import { IMAGE_PIXELS } from "../lib/data_gpu.ts";

/** Points above which t-SNE (quadratic in the points) gets a warning with an estimate. */
const WARN_POINTS = 5000;
/**
 * Seconds per pair of points and iteration of our GPU t-SNE on llvmpipe (2 cores): 20,000
 * points, 300 iterations in ~174 s (`deno task embed --count 20000`); tsne-js is ~30x slower.
 */
const SECONDS_PER_PAIR_ITERATION = 1.5e-9;

const program = new Command()
  .name("deno task embed")
  .description(
    "t-SNE of a trained model's embeddings of the first training images (the notebook's last plot).",
  )
  .option("--run <dir>", "run folder (default: the newest under runs/)")
  .addOption(dataOption())
  .addOption(datasetOption())
  .addOption(
    new Option(
      "--layer <layer>",
      "logits (the notebook's) or features (the pooled features before the classifier)",
    )
      .choices(["logits", "features"]).default("logits"),
  )
  .option("--count <n>", "first training images to embed", wholeNumber("--count", 2), 1000)
  .addOption(
    new Option("--tsne <method>", "gpu: our WGSL t-SNE; tsne-js: the npm package (slow)")
      .choices(["gpu", "tsne-js"]).default("gpu"),
  )
  .option(
    "--perplexity <x>",
    "t-SNE perplexity",
    realNumber("--perplexity", { min: 0, exclusive: true }),
    30,
  )
  .option("--iterations <n>", "t-SNE iterations", positiveInt("--iterations"), 300)
  .option(
    "--learning-rate <x>",
    "t-SNE learning rate",
    realNumber("--learning-rate", { min: 0, exclusive: true }),
    200,
  )
  .option("--seed <n>", "t-SNE RNG seed", nonNegativeInt("--seed"), 42)
  .addOption(deviceOption())
  .addOption(kernelsOption())
  .option("--quiet", "no progress bars")
  .showHelpAfterError();

async function main(): Promise<void> {
  program.parse(["deno", "embed", ...Deno.args]);
  const options = program.opts();
  const dir = options.run ?? await newestRun();
  const run = await loadRun(dir);
  const dataset = (options.dataset ?? run.options.dataset ?? "mnist") as DatasetName;
  if (!Object.hasOwn(CLASS_NAMES, dataset)) {
    throw new Error(`${dir}: the run's dataset "${dataset}" is not one of ours`);
  }
  const { train } = await loadDataset(options.data, dataset);
  const count = Math.min(options.count, train.count);
  if (count < options.count) {
    console.log(
      `Notice: --count ${options.count} is more than the ${train.count} training images: ` +
        `embedding all ${train.count}.`,
    );
  }
  if (options.perplexity >= count) {
    throw new Error(
      `--perplexity ${options.perplexity} must be below the number of points (${count})`,
    );
  }
  const { rt, kernels } = await openRuntime(options.device, options.kernels);
  console.log(
    `Run: ${dir} (model ${run.model.name}, trained with ${
      run.metadata.kernels ?? "cpu"
    } kernels); ${count} training images on ${rt.description}, ${kernels} kernels`,
  );
  // "features" is what the classifier reads: the output of its Flatten.
  const layer = options.layer === "features" ? "classifier.0" : undefined;
  const first = {
    images: train.images.subarray(0, count * IMAGE_PIXELS),
    labels: train.labels.subarray(0, count),
    count,
  };
  const forwardBar = options.quiet || count < WARN_POINTS
    ? undefined
    : progressBar("Embedding {bar} {value}/{total} images | ETA {eta_formatted}", count, {});
  const { values, dim } = await forwardSplit(rt, run.model, first, {
    params: run.params,
    layer,
    ...run.normalization,
    onProgress: (done) => forwardBar?.update(done),
  });
  forwardBar?.stop();
  console.log(`Embeddings: [${count}, ${dim}] (${options.layer})`);
  const settings = {
    n: count,
    dim,
    perplexity: options.perplexity,
    iterations: options.iterations,
    learningRate: options.learningRate,
    seed: options.seed,
  };
  if (count > WARN_POINTS) {
    const estimate = SECONDS_PER_PAIR_ITERATION * count ** 2 * options.iterations *
      (options.tsne === "gpu" ? 1 : 30);
    console.log(
      `Warning: t-SNE's cost grows with the square of the points: ${count} points take about ` +
        `${formatDuration(estimate)} on llvmpipe with two CPU cores (${
          rt.isFallback ? "this adapter is a software one too" : "much less on a GPU"
        }). Ctrl-C stops it; --count sets fewer.`,
    );
  }
  const bar = options.quiet || options.tsne !== "gpu" ? undefined : progressBar(
    "t-SNE {bar} {value}/{total} iterations | KL {kl} | ETA {eta_formatted}",
    options.iterations,
    {
      kl: "-",
    },
  );
  const result = options.tsne === "gpu"
    ? await tsne(rt, values, {
      ...settings,
      onProgress: (i, kl) => {
        if (bar) bar.update(i, { kl: kl?.toFixed(4) ?? "-" });
        else if (kl !== undefined) console.log(`  iteration ${i}: KL ${kl.toFixed(4)}`);
      },
    })
    : tsneJs(values, settings);
  bar?.stop();
  console.log(
    `t-SNE (${options.tsne}): ${result.seconds.toFixed(2)} s, KL divergence ${
      result.kl.toFixed(4)
    }`,
  );

  const out = join(dir, "embed");
  await Deno.mkdir(out, { recursive: true });
  await writeSafetensorsFile(join(out, "embeddings.safetensors"), {
    embeddings: { dtype: "F32", shape: [count, dim], data: values },
    labels: { dtype: "U8", shape: [count], data: first.labels.slice() },
    tsne: { dtype: "F32", shape: [count, 2], data: result.points },
  }, {
    run: dir,
    layer: options.layer,
    method: options.tsne,
    perplexity: String(options.perplexity),
    iterations: String(options.iterations),
    learning_rate: String(options.learningRate),
    seed: String(options.seed),
    kl: String(result.kl),
    seconds: String(result.seconds),
  });
  await writeFileAtomic(
    join(out, "tsne.svg"),
    scatterSvg(result.points, first.labels, {
      title: `t-SNE of embeddings learned by ${run.model.name} (${options.layer})`,
      classNames: CLASS_NAMES[dataset],
    }),
  );
  console.log(`wrote ${out}/embeddings.safetensors and tsne.svg`);
}

function formatDuration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} minutes`;
  return `${(seconds / 3600).toFixed(1)} hours`;
}

if (import.meta.main) await runMain(main);
