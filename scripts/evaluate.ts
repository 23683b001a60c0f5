/**
 * `deno task evaluate`: scores a run's checkpoint on the test set (loss, accuracy, per-class
 * precision and recall) and writes runs/<run>/eval/: eval.json, confusion.svg, errors.svg.
 * @module
 */

import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import { createRuntime } from "../lib/device.ts";
import type { DeviceChoice } from "../lib/runtime.ts";
import { forwardSplit } from "../lib/infer.ts";
import { evaluateLogits } from "../lib/metrics.ts";
import { loadRun, newestRun } from "../lib/io/runs.ts";
import { CLASS_NAMES, type DatasetName, loadDataset } from "../lib/io/mnist.ts";
import { writeFileAtomic } from "../lib/io/files.ts";
import { confusionSvg, digitsSvg } from "../lib/io/charts.ts";

const program = new Command()
  .name("deno task evaluate")
  .description("Evaluate a trained checkpoint on the test set; writes <run>/eval/.")
  .option("--run <dir>", "run folder (default: the newest under runs/)")
  .option("--data <dir>", "folder of the data files", "data")
  .addOption(
    new Option("--dataset <name>", "dataset (default: the run's)").choices([
      "mnist",
      "fashion-mnist",
    ]),
  )
  .option("--batch-size <n>", "images per dispatch (results do not depend on it)", (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1) {
      throw new InvalidArgumentError(`--batch-size must be a whole number >= 1, got "${v}".`);
    }
    return n;
  }, 500)
  .option("--errors <n>", "misclassified digits to draw", (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v)) {
      throw new InvalidArgumentError(`--errors must be a whole number, got "${v}".`);
    }
    return n;
  }, 40)
  .addOption(
    new Option("--device <kind>", "adapter").choices(["auto", "gpu", "cpu"]).default("auto"),
  )
  .showHelpAfterError();

async function main(): Promise<void> {
  program.parse(["deno", "evaluate", ...Deno.args]);
  const options = program.opts();
  const dir = options.run ?? await newestRun();
  const run = await loadRun(dir);
  const dataset = (options.dataset ?? run.options.dataset ?? "mnist") as DatasetName;
  const rt = await createRuntime(options.device as DeviceChoice);
  console.log(
    `Run: ${dir} (model ${run.model.name}, epoch ${
      run.metadata.epoch ?? "?"
    }) on ${rt.description}`,
  );
  const { test } = await loadDataset(options.data, dataset);
  const t0 = performance.now();
  const { values } = await forwardSplit(rt, run.model, test, {
    params: run.params,
    batchSize: options.batchSize,
    mean: 0.1307,
    std: 0.3081,
  });
  const seconds = (performance.now() - t0) / 1000;
  const names = CLASS_NAMES[dataset];
  const result = evaluateLogits(values, test.labels, { classes: names.length });
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
  if (shown.length > 0) {
    const images = new Uint8Array(shown.length * 784);
    shown.forEach((i, k) => images.set(test.images.subarray(i * 784, (i + 1) * 784), k * 784));
    await writeFileAtomic(
      join(out, "errors.svg"),
      digitsSvg(images, shown.map((i) => test.labels[i]), {
        columns: 10,
        titles: shown.map((i) => `${names[test.labels[i]]} → ${names[result.predictions[i]]}`),
      }),
    );
  }
  console.log(`${wrong.length} misclassified; wrote ${out}/eval.json, confusion.svg, errors.svg`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
