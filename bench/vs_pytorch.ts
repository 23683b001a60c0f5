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

import { Command, Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import { loadDataset } from "../lib/io/mnist.ts";
import { encodeIdxImages, encodeIdxLabels } from "../lib/io/idx.ts";
import { findPython, PYTORCH_PACKAGES } from "../tests/pytorch/python.ts";
import { dataOption, positiveInt } from "../scripts/cli_options.ts";
import { runMain } from "../scripts/terminal.ts";

const program = new Command()
  .name("deno task bench:vs-pytorch")
  .description(
    "Our 1-epoch training + test pass against the seed's PyTorch script on the same MNIST, " +
      "one after the other, --runs times: whole-process times, images/s, accuracies and the " +
      "median ratio (PyTorch time / ours: above 1 means we are faster).",
  )
  .option("--runs <n>", "runs of each side", positiveInt("--runs"), 3)
  .option("--epochs <n>", "epochs of each run", positiveInt("--epochs"), 1)
  .addOption(
    new Option("--model <name>", "lenet (the seed's model) or lenet5 (the notebook's LeNet5)")
      .choices(["lenet", "lenet5"] as const).default("lenet" as const),
  )
  .addOption(
    new Option("--c3 <table>", "lenet5's C3 on our side: full, or lecun (LeCun's table)")
      .choices(["full", "lecun"] as const).default("full" as const),
  )
  .addOption(dataOption("folder of the data files (MNIST in <dir>/mnist)"))
  .option(
    "--reference <path>",
    "the seed's PyTorch script",
    new URL("../../shared/reference/seed_reference.py", import.meta.url).pathname,
  )
  .showHelpAfterError();

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

async function main(): Promise<void> {
  program.parse(["deno", "bench:vs-pytorch", ...Deno.args]);
  const { runs, epochs, model, c3, data: dataDir, reference } = program.opts();
  if (c3 !== "full" && model !== "lenet5") {
    program.error(`error: --c3 ${c3} needs --model lenet5 (the seed's lenet has no C3 table).`);
  }
  try {
    await Deno.stat(reference);
  } catch {
    program.error(`error: --reference ${reference}: file not found (the seed's PyTorch script).`);
  }
  const modelArgs = model === "lenet5" ? ["--model", "lenet5", "--c3", c3] : [];

  // The seed's PyTorch reads ROOT/MNIST/raw: the same images, written back as IDX files.
  const data = await loadDataset(dataDir, "mnist");
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
      dataDir,
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
      [reference, root, "MNIST", String(epochs), "2", model, "0"],
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
      }% | ${b.seconds.toFixed(1)} | ${torchLast.train_img_s} | ${
        torchLast.test_acc.toFixed(2)
      }% | ${ratio.toFixed(2)} |`,
    );
  }
  const median = ratios.toSorted((x, y) => x - y)[Math.floor(ratios.length / 2)];
  console.log(`median ratio (PyTorch time / ours): ${median.toFixed(2)}`);
  await Deno.remove(root, { recursive: true });
  await Deno.remove(ours, { recursive: true });
}

if (import.meta.main) await runMain(main);
