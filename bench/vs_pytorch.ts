/**
 * `deno task bench:vs-pytorch`: our 1-epoch training + test pass against the seed's PyTorch
 * code (../shared/reference/seed_reference.py, run as written) on the same data, one after
 * the other, `--runs` times; prints both whole-process times, images/s, accuracies and the
 * median ratio (PyTorch time / ours: above 1 means we are faster). `--model lenet5` runs
 * the notebook's LeNet5 (tanh/avg) on both sides; `--c3 lecun` (ours only) its C3 with
 * LeCun's connection table, against PyTorch's dense C3.
 *
 * PyTorch comes from Debian (python3-torch, python3-torchvision, python3-sklearn); when it is
 * missing, the task installs it with apt-get (as root) or says how.
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { loadDataset } from "../lib/io/mnist.ts";
import { encodeIdxImages, encodeIdxLabels } from "../lib/io/idx.ts";
import { findPython, PYTORCH_PACKAGES } from "../tests/pytorch/python.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    epochs: { type: "string", default: "1" },
    model: { type: "string", default: "lenet" },
    c3: { type: "string", default: "full" },
    data: { type: "string", default: "data" },
    reference: {
      type: "string",
      default: new URL("../../shared/reference/seed_reference.py", import.meta.url).pathname,
    },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(
    "usage: deno task bench:vs-pytorch [--runs 3] [--epochs 1] [--model lenet|lenet5] [--c3 full|lecun] [--data data] [--reference seed_reference.py]",
  );
  Deno.exit(0);
}
const runs = Number(values.runs), epochs = Number(values.epochs);
const { model, c3 } = values;
if (!["lenet", "lenet5"].includes(model)) {
  throw new Error(`--model: expected lenet or lenet5, got "${model}"`);
}
if (!["full", "lecun"].includes(c3) || (c3 !== "full" && model !== "lenet5")) {
  throw new Error(`--c3: expected full or lecun, with --model lenet5; got "${c3}" (${model})`);
}
const modelArgs = model === "lenet5" ? ["--model", "lenet5", "--c3", c3] : [];

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const seconds = (performance.now() - t0) / 1000;
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return { seconds, text };
}

/** A python3 that imports torch, torchvision and sklearn; installs Debian's when none does. */
async function torchPython(): Promise<string> {
  const modules = ["torch", "torchvision", "sklearn"];
  const python = await findPython(modules);
  if (python) return python;
  console.log(`PyTorch is missing: apt-get install ${PYTORCH_PACKAGES.join(" ")}`);
  await run("apt-get", ["update", "-qq"]);
  await run("apt-get", ["install", "-y", "-qq", ...PYTORCH_PACKAGES]);
  const installed = await findPython(modules);
  if (installed) return installed;
  throw new Error("could not install PyTorch (Debian's python3-torch); install it and run again");
}

// The seed's PyTorch reads ROOT/MNIST/raw: the same images, written back as IDX files.
const data = await loadDataset(values.data, "mnist");
const root = await Deno.makeTempDir({ prefix: "vs-pytorch-" });
const raw = join(root, "MNIST", "raw");
await Deno.mkdir(raw, { recursive: true });
for (const [prefix, split] of [["train", data.train], ["t10k", data.test]] as const) {
  await Deno.writeFile(
    join(raw, `${prefix}-images-idx3-ubyte`),
    encodeIdxImages(split.images, { rows: 28, cols: 28 }),
  );
  await Deno.writeFile(join(raw, `${prefix}-labels-idx1-ubyte`), encodeIdxLabels(split.labels));
}
const python = await torchPython();
const train = new URL("../scripts/train.ts", import.meta.url).pathname;
const ours = await Deno.makeTempDir({ prefix: "vs-pytorch-run-" });

console.log(
  `${model}${model === "lenet5" ? ` (ours: C3 ${c3})` : ""}, ${epochs} epoch(s) + test pass, ` +
    `full MNIST (${data.train.count} + ${data.test.count}), ${runs} runs`,
);
console.log(
  "| run | ours s | ours img/s | ours test acc | PyTorch s | PyTorch img/s | PyTorch test acc | ratio |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
const ratios: number[] = [];
for (let i = 1; i <= runs; i++) {
  const out = join(ours, `run${i}`);
  const a = await run(Deno.execPath(), [
    "run",
    "-A",
    train,
    "--data",
    values.data,
    "--epochs",
    String(epochs),
    ...modelArgs,
    "--quiet",
    "--out",
    out,
  ]);
  const metrics = JSON.parse(await Deno.readTextFile(join(out, "metrics.json")));
  const b = await run(
    python,
    [values.reference, root, "MNIST", String(epochs), "2", model, "0"],
    {
      NO_TSNE: "1",
    },
  );
  const torchEpochs = b.text.trim().split("\n").slice(0, -1).map((l) => JSON.parse(l));
  const ratio = b.seconds / a.seconds;
  ratios.push(ratio);
  const last = metrics.at(-1), torchLast = torchEpochs.at(-1);
  console.log(
    `| ${i} | ${a.seconds.toFixed(1)} | ${last.train_images_per_s} | ${
      last.test_acc.toFixed(2)
    }% | ${b.seconds.toFixed(1)} | ${torchLast.train_img_s} | ${torchLast.test_acc.toFixed(2)}% | ${
      ratio.toFixed(2)
    } |`,
  );
}
const median = ratios.toSorted((x, y) => x - y)[Math.floor(ratios.length / 2)];
console.log(`median ratio (PyTorch time / ours): ${median.toFixed(2)}`);
await Deno.remove(root, { recursive: true });
await Deno.remove(ours, { recursive: true });
