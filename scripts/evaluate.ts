/**
 * `deno task evaluate`: scores a run's checkpoint on the test set (loss, accuracy, per-class
 * precision and recall) and writes runs/<run>/eval/: eval.json, confusion.svg, errors.svg.
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import { join } from "node:path";
import { forwardSplit } from "../lib/infer.ts";
import { evaluateLogits } from "../lib/metrics.ts";
import { CLASS_NAMES, type DatasetName, loadDataset } from "../lib/io/mnist.ts";
import { exists, writeFileAtomic } from "../lib/io/files.ts";
import { confusionSvg, digitsSvg } from "../lib/io/charts.ts";
import { loadRun, newestRun } from "./run_folder.ts";
import {
  dataOption,
  datasetOption,
  deviceOption,
  kernelsOption,
  nonNegativeInt,
  openRuntime,
  positiveInt,
} from "./cli_options.ts";
import { progressBar, runMain } from "./terminal.ts";
import { IMAGE_PIXELS } from "../lib/data_gpu.ts";

const program = new Command()
  .name("deno task evaluate")
  .description("Evaluate a trained checkpoint on the test set; writes <run>/eval/.")
  .option("--run <dir>", "run folder (default: the newest under runs/)")
  .addOption(dataOption())
  .addOption(datasetOption())
  .option(
    "--batch-size <n>",
    "images per dispatch (results do not depend on it)",
    positiveInt("--batch-size"),
    500,
  )
  .option("--errors <n>", "misclassified digits to draw", nonNegativeInt("--errors"), 40)
  .addOption(deviceOption())
  .addOption(kernelsOption())
  .option("--quiet", "no progress bar")
  .showHelpAfterError();

async function main(): Promise<void> {
  program.parse(["deno", "evaluate", ...Deno.args]);
  const options = program.opts();
  const dir = options.run ?? await newestRun();
  const run = await loadRun(dir);
  const dataset = (options.dataset ?? run.options.dataset ?? "mnist") as DatasetName;
  if (!Object.hasOwn(CLASS_NAMES, dataset)) {
    throw new Error(`${dir}: the run's dataset "${dataset}" is not one of ours`);
  }
  const { rt, kernels } = await openRuntime(options.device, options.kernels);
  console.log(
    `Run: ${dir} (model ${run.model.name}, epoch ${run.metadata.epoch ?? "?"}, trained with ${
      run.metadata.kernels ?? "cpu"
    } kernels) on ${rt.description}, ${kernels} kernels`,
  );
  const { test } = await loadDataset(options.data, dataset);
  const t0 = performance.now();
  const bar = options.quiet
    ? undefined
    : progressBar("Evaluating {bar} {value}/{total} images | ETA {eta_formatted}", test.count, {});
  const { values } = await forwardSplit(rt, run.model, test, {
    params: run.params,
    batchSize: options.batchSize,
    ...run.normalization,
    onProgress: (done) => bar?.update(done),
  });
  bar?.stop();
  const seconds = (performance.now() - t0) / 1000;
  const names = CLASS_NAMES[dataset];
  const result = evaluateLogits(values, test.labels, { classes: names.length });
  if (!Number.isFinite(result.loss)) {
    throw new Error(
      `the test loss is ${result.loss}: ${join(dir, "model.safetensors")} gives outputs that ` +
        `are not finite`,
    );
  }
  console.log(`Test samples: ${test.count} (${(test.count / seconds).toFixed(0)} images/s)`);
  console.log(`Test → Loss: ${result.loss.toFixed(4)} | Acc: ${result.accuracy.toFixed(2)}%`);
  console.log("class        precision  recall  support");
  for (const c of result.perClass) {
    console.log(
      `${names[c.label].padEnd(12)} ${(100 * c.precision).toFixed(2).padStart(8)}% ${
        (100 * c.recall).toFixed(2).padStart(6)
      }% ${String(c.support).padStart(8)}`,
    );
  }

  const out = join(dir, "eval");
  await Deno.mkdir(out, { recursive: true });
  const wrong = [...result.predictions.keys()].filter((i) =>
    result.predictions[i] !== test.labels[i]
  );
  const shown = wrong.slice(0, options.errors);
  await writeFileAtomic(
    join(out, "eval.json"),
    JSON.stringify(
      {
        run: dir,
        epoch: Number(run.metadata.epoch),
        dataset,
        adapter: rt.description,
        kernels,
        images: test.count,
        loss: result.loss,
        accuracy: result.accuracy,
        per_class: result.perClass.map((c) => ({ ...c, name: names[c.label] })),
        confusion: result.confusion,
        misclassified: wrong.length,
      },
      null,
      2,
    ) + "\n",
  );
  await writeFileAtomic(join(out, "confusion.svg"), confusionSvg(result.confusion, names));
  const errorsPath = join(out, "errors.svg");
  if (shown.length > 0) {
    const images = new Uint8Array(shown.length * IMAGE_PIXELS);
    shown.forEach((i, k) =>
      images.set(test.images.subarray(i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS), k * IMAGE_PIXELS)
    );
    await writeFileAtomic(
      errorsPath,
      digitsSvg(images, shown.map((i) => test.labels[i]), {
        columns: 10,
        heading: `The first ${shown.length} of ${wrong.length} misclassified: true → predicted`,
        titles: shown.map((i) => `${names[test.labels[i]]} → ${names[result.predictions[i]]}`),
      }),
    );
    console.log(`${wrong.length} misclassified; wrote ${out}/eval.json, confusion.svg, errors.svg`);
  } else {
    // An errors.svg of an earlier evaluation would no longer describe this one.
    if (await exists(errorsPath)) await Deno.remove(errorsPath);
    console.log(
      `${wrong.length} misclassified; wrote ${out}/eval.json and confusion.svg (no errors.svg: ${
        wrong.length === 0 ? "nothing to draw" : "--errors 0"
      })`,
    );
  }
}

if (import.meta.main) await runMain(main);
