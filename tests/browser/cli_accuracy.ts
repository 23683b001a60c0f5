/**
 * The Deno side of the ?run= check, in a process of its own (Deno's WebGPU may crash while a
 * process tears its device down; the test reads the line printed before): the run's
 * checkpoint scored on the first `count` test images by the path `deno task evaluate` takes
 * (the checkpoint read by loadStateDict, forwardSplit on llvmpipe, evaluateLogits); prints
 * `correct <n>`.
 *
 * Usage: deno run -A tests/browser/cli_accuracy.ts <run folder> <count>
 * @module
 */

import { join } from "node:path";
import { createRuntime } from "../../mod.ts";
import { loadDataset } from "../../lib/io/mnist.ts";
import { evaluate, firstImages, readCheckpoint } from "../../web/engine.ts";

const [dir, countText] = Deno.args;
const path = join(dir, "model.safetensors");
const net = readCheckpoint(await Deno.readFile(path), path);
const { test } = await loadDataset("data", "mnist");
const sample = firstImages(test, Number(countText));
const { evaluation } = await evaluate(await createRuntime("auto"), net, sample);
console.log(`correct ${Math.round((evaluation.accuracy * sample.count) / 100)}`);
