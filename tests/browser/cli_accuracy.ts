/**
 * The CLI's side of the ?run= check, in a process of its own (Deno's WebGPU may crash while
 * a process tears its device down; the test reads the line printed before): scores a run's
 * checkpoint on the first `count` test images as `deno task evaluate` scores the test set
 * (loadRun, forwardSplit, evaluateLogits) and prints `correct <n>`.
 *
 * Usage: deno run -A tests/browser/cli_accuracy.ts <run folder> <count>
 * @module
 */

import { createRuntime, evaluateLogits, forwardSplit } from "../../mod.ts";
import { loadRun } from "../../lib/io/runs.ts";
import { loadDataset } from "../../lib/io/mnist.ts";

const [dir, countText] = Deno.args;
const count = Number(countText);
const run = await loadRun(dir);
const { test } = await loadDataset("data", "mnist");
const sample = {
  images: test.images.subarray(0, count * 784),
  labels: test.labels.subarray(0, count),
  count,
};
const rt = await createRuntime("auto");
const { values } = await forwardSplit(rt, run.model, sample, {
  params: run.params,
  mean: 0.1307,
  std: 0.3081,
});
const { accuracy } = evaluateLogits(values, sample.labels, { classes: 10 });
console.log(`correct ${Math.round((accuracy * count) / 100)}`);
