import assert from "node:assert/strict";
import { runScript } from "./util/synthetic.ts";

type Result = Awaited<ReturnType<typeof runScript>>;

/** A user error: a non-zero exit, `message` on stderr, and no stack trace. */
function assertRefused(result: Result, message: RegExp): void {
  assert.notEqual(result.code, 0, result.stdout);
  assert.match(result.stderr, message);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
}

/** `--help` answers on stdout and lists `options` in order. */
function assertHelp(result: Result, options: string[]): void {
  assert.equal(result.code, 0, result.stderr);
  const escaped = options.map((o) => o.replace(/[|<>]/g, (c) => `\\${c}`));
  assert.match(result.stdout, new RegExp(escaped.join("[\\s\\S]*")));
}

// bench:profile once threw a stack trace for --help (issue 12); it shares the scripts' options.
Deno.test("bench:profile answers --help and refuses a bad number without a stack", async () => {
  const help = await runScript("../bench/step_profile.ts", ["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /--model <name>[\s\S]*--batch <n>[\s\S]*--kernels <tier>/);
  const bad = await runScript("../bench/step_profile.ts", ["--batch", "0"]);
  assertRefused(bad, /--batch must be a whole number >= 1, got "0"/);
  const model = await runScript("../bench/step_profile.ts", ["--model", "lenet6"]);
  assertRefused(model, /Allowed choices are lenet, lenet5/);
});

// These stop at the options: no data read, no training, no GPU.
Deno.test("bench:train answers --help and refuses bad numbers and names without a stack", async () => {
  const script = "../bench/train_throughput.ts";
  const [help, trials, batches, models] = await Promise.all([
    runScript(script, ["--help"]),
    runScript(script, ["--trials", "0"]),
    runScript(script, ["--batches", "32,x"]),
    runScript(script, ["--models", "lenet,lenet6"]),
  ]);
  assertHelp(help, [
    "--batches <list>",
    "--models <list>",
    "--kernels <list>",
    "--images <n>",
    "--trials <n>",
    "--no-pytorch",
  ]);
  assertRefused(trials, /--trials must be a whole number >= 1, got "0"/);
  assertRefused(batches, /--batches must be a comma-separated list of whole numbers >= 1/);
  assertRefused(
    models,
    /--models must be a comma-separated list of lenet, lenet5, got "lenet,lenet6"/,
  );
});

Deno.test("bench:vs-pytorch answers --help and refuses bad options without a stack", async () => {
  const script = "../bench/vs_pytorch.ts";
  const [help, runs, model, c3] = await Promise.all([
    runScript(script, ["--help"]),
    runScript(script, ["--runs", "two"]),
    runScript(script, ["--model", "lenet6"]),
    runScript(script, ["--c3", "lecun"]),
  ]);
  assertHelp(help, [
    "--runs <n>",
    "--epochs <n>",
    "--model <name>",
    "--c3 <table>",
    "--data <dir>",
    "--reference <path>",
  ]);
  assertRefused(runs, /--runs must be a whole number >= 1, got "two"/);
  assertRefused(model, /Allowed choices are lenet, lenet5/);
  assertRefused(c3, /--c3 lecun needs --model lenet5/);
});

Deno.test("bench:crosscheck answers --help and refuses a bad number without a stack", async () => {
  const script = "../bench/pytorch_crosscheck.ts";
  const [help, bad] = await Promise.all([
    runScript(script, ["--help"]),
    runScript(script, ["--epochs", "0"]),
  ]);
  assertHelp(help, ["--seed <n>", "--epochs <n>", "--pytorch-init", "--data <dir>", "--threads"]);
  assertRefused(bad, /--epochs must be a whole number >= 1, got "0"/);
});

Deno.test("tsne_compare answers --help and refuses bad options without a stack", async () => {
  const script = "../bench/tsne_compare.ts";
  const [help, dim, methods] = await Promise.all([
    runScript(script, ["--help"]),
    runScript(script, ["--dim", "1.5"]),
    runScript(script, ["--methods", "webgpu,umap"]),
  ]);
  assertHelp(help, [
    "--data <kind>",
    "--sizes <list>",
    "--dim <n>",
    "--source <dir>",
    "--embeddings <file>",
    "--methods <list>",
    "--tsne-js-max <n>",
    "--seed <n>",
  ]);
  assertRefused(dim, /--dim must be a whole number >= 1, got "1.5"/);
  assertRefused(methods, /--methods must be a comma-separated list of webgpu, sklearn, tsne-js/);
});

// train_bench.ts is a deno bench file: its options come after `--`; under deno run the
// parsing is the same.
Deno.test("train_bench answers --help and refuses a bad tier without a stack", async () => {
  const script = "../bench/train_bench.ts";
  const [help, bad] = await Promise.all([
    runScript(script, ["--help"]),
    runScript(script, ["--kernels", "gpu"]),
  ]);
  assertHelp(help, ["--kernels <tier>"]);
  assertRefused(bad, /Allowed choices are auto, plain, cpu/);
});
