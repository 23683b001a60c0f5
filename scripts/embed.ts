/**
 * `deno task embed`: the seed's last section. The model's outputs (logits, or the pooled
 * features with --layer features) for the first training images, projected to 2-D by t-SNE
 * (perplexity 30, 300 iterations, learning rate 200, seed 42), on the GPU by default;
 * writes runs/<run>/embed/embeddings.safetensors and tsne.svg.
 * @module
 */

import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import { createRuntime } from "../lib/device.ts";
import type { DeviceChoice } from "../lib/runtime.ts";
import { forwardSplit } from "../lib/infer.ts";
import { tsne } from "../lib/tsne.ts";
import { tsneJs } from "../lib/tsne_js.ts";
import { loadRun, newestRun } from "../lib/io/runs.ts";
import { CLASS_NAMES, type DatasetName, loadDataset } from "../lib/io/mnist.ts";
import { writeFileAtomic, writeSafetensorsFile } from "../lib/io/files.ts";
import { scatterSvg } from "../lib/io/charts.ts";

function wholeNumber(name: string, min: number) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || n < min) {
      throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got "${v}".`);
    }
    return n;
  };
}

function positive(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === "" || !(n > 0) || !Number.isFinite(n)) {
      throw new InvalidArgumentError(`${name} must be a number > 0, got "${v}".`);
    }
    return n;
  };
}

const program = new Command()
  .name("deno task embed")
  .description(
    "t-SNE of a trained model's embeddings of the first training images (the seed's last plot).",
  )
  .option("--run <dir>", "run folder (default: the newest under runs/)")
  .option("--data <dir>", "folder of the data files", "data")
  .addOption(
    new Option("--dataset <name>", "dataset (default: the run's)").choices([
      "mnist",
      "fashion-mnist",
    ]),
  )
  .addOption(
    new Option(
      "--layer <layer>",
      "logits (the seed's) or features (the pooled features before the classifier)",
    )
      .choices(["logits", "features"]).default("logits"),
  )
  .option("--count <n>", "first training images to embed", wholeNumber("--count", 2), 1000)
  .addOption(
    new Option("--tsne <method>", "gpu: our WGSL t-SNE; tsne-js: the npm package (slow)")
      .choices(["gpu", "tsne-js"]).default("gpu"),
  )
  .option("--perplexity <x>", "t-SNE perplexity", positive("--perplexity"), 30)
  .option("--iterations <n>", "t-SNE iterations", wholeNumber("--iterations", 1), 300)
  .option("--learning-rate <x>", "t-SNE learning rate", positive("--learning-rate"), 200)
  .option("--seed <n>", "t-SNE seed", wholeNumber("--seed", 0), 42)
  .addOption(
    new Option("--device <kind>", "adapter").choices(["auto", "gpu", "cpu"]).default("auto"),
  )
  .showHelpAfterError();

async function main(): Promise<void> {
  program.parse(["deno", "embed", ...Deno.args]);
  const options = program.opts();
  const dir = options.run ?? await newestRun();
  const run = await loadRun(dir);
  const dataset = (options.dataset ?? run.options.dataset ?? "mnist") as DatasetName;
  const { train } = await loadDataset(options.data, dataset);
  const count = Math.min(options.count, train.count);
  if (options.perplexity >= count) {
    throw new Error(
      `--perplexity ${options.perplexity} must be below the number of points (${count})`,
    );
  }
  const rt = await createRuntime(options.device as DeviceChoice);
  console.log(
    `Run: ${dir} (model ${run.model.name}); ${count} training images on ${rt.description}`,
  );
  // "features" is what the classifier reads: the output of its Flatten.
  const layer = options.layer === "features" ? "classifier.0" : undefined;
  const first = {
    images: train.images.subarray(0, count * 784),
    labels: train.labels.subarray(0, count),
    count,
  };
  const { values, dim } = await forwardSplit(rt, run.model, first, {
    params: run.params,
    layer,
    mean: 0.1307,
    std: 0.3081,
  });
  console.log(`Embeddings: [${count}, ${dim}] (${options.layer})`);
  const settings = {
    n: count,
    dim,
    perplexity: options.perplexity,
    iterations: options.iterations,
    learningRate: options.learningRate,
    seed: options.seed,
  };
  const result = options.tsne === "gpu"
    ? await tsne(rt, values, {
      ...settings,
      onProgress: (i, kl) => {
        if (kl !== undefined) console.log(`  iteration ${i}: KL ${kl.toFixed(4)}`);
      },
    })
    : tsneJs(values, settings);
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

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
