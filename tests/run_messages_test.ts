/**
 * What the scripts say, where it was wrong or missing: option bounds, batch-size advice that
 * works, damaged data, bad checkpoints, --errors 0, progress on long paths, the summary and
 * the charts a 1-epoch run draws.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensorsFile, writeSafetensorsFile } from "../lib/io/files.ts";
import { runScript, syntheticData, trainedRun } from "./util/synthetic.ts";

const cli = { sanitizeResources: false, sanitizeOps: false };

Deno.test("--seed takes 0 and says so when given -1", cli, async () => {
  for (const script of ["train.ts", "embed.ts"]) {
    const r = await runScript(script, ["--seed", "-1"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--seed must be a whole number >= 0, got "-1"/, script);
  }
});

Deno.test("a too-large --batch-size is refused with a size that then trains", cli, async () => {
  const dir = await Deno.makeTempDir();
  await syntheticData(join(dir, "small"), { train: 40, test: 10 });
  const r = await runScript("train.ts", [
    "--data",
    join(dir, "small"),
    "--batch-size",
    "60001",
    "--out",
    join(dir, "refused"),
  ]);
  assert.notEqual(r.code, 0);
  const advice = /too large for this adapter \(.*\); use --batch-size (\d+) or less\./.exec(
    r.stderr,
  );
  assert.ok(advice, r.stderr);
  const batch = Number(advice[1]);
  await syntheticData(join(dir, "big"), { train: batch, test: 10 });
  const trained = await runScript("train.ts", [
    "--data",
    join(dir, "big"),
    "--batch-size",
    String(batch),
    "--epochs",
    "1",
    "--quiet",
    "--out",
    join(dir, "run"),
  ]);
  assert.equal(trained.code, 0, trained.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a damaged data file is refused, naming it and the download to run", cli, async () => {
  const dir = await Deno.makeTempDir();
  await syntheticData(join(dir, "data"), { train: 64, test: 16 });
  const path = join(dir, "data", "mnist", "train.safetensors");
  const bytes = await Deno.readFile(path);
  bytes[bytes.length - 100] ^= 0xff; // a pixel of the last image
  await Deno.writeFile(path, bytes);
  const r = await runScript("train.ts", ["--data", join(dir, "data"), "--out", join(dir, "run")]);
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr,
    /train\.safetensors: its images do not match the SHA-256 recorded for train-images-idx3-ubyte \(the file is damaged\); run: deno task download --dataset mnist --force/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test(
  "train normalizes by the data's own mean and std, records them, and prints torchinfo's totals",
  cli,
  async () => {
    const { dir, run } = await trainedRun({ train: 256, test: 32 });
    const r = await runScript("train.ts", ["--resume", run, "--epochs", "2", "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    // The synthetic digits' pixel mean is not MNIST's 0.1307: only their own make a batch ~N(0,1).
    const mean = Number(/Batch mean: (-?[\d.]+)/.exec(r.stdout)![1]);
    const std = Number(/Batch standard deviation: ([\d.]+)/.exec(r.stdout)![1]);
    assert.ok(Math.abs(mean) < 0.15 && Math.abs(std - 1) < 0.15, `mean ${mean}, std ${std}`);
    const { metadata } = await readSafetensorsFile(join(run, "model.safetensors"));
    const recorded = { mean: Number(metadata.mean), std: Number(metadata.std) };
    assert.ok(
      Math.abs(recorded.mean - 0.1307) > 0.01 && recorded.std > 0,
      JSON.stringify(recorded),
    );
    for (
      const line of [
        "Total mult-adds (M): 8.06",
        "Input size (MB): 0.10",
        "Forward/backward pass size (MB): 2.71",
        "Params size (MB): 0.04",
        "Estimated Total Size (MB): 2.85",
      ]
    ) {
      assert.ok(r.stdout.includes(line), `no "${line}" in:\n${r.stdout}`);
    }
    // A 2-epoch run's curves: a point per step (8 a epoch) and the 2 test points marked.
    const curves = await Deno.readTextFile(join(run, "curves.svg"));
    assert.equal((curves.match(/class="marker"/g) ?? []).length, 4);
    const lines = [...curves.matchAll(/<path d="M([^"]*)"[^>]*class="series"/g)].map((m) =>
      m[1].split("L").length
    );
    assert.deepEqual(lines, [16, 16, 2, 16, 16, 2]);
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "evaluate refuses non-finite weights and a model name that is not ours",
  cli,
  async () => {
    const { dir, run } = await trainedRun({ train: 64, test: 16 });
    const path = join(run, "model.safetensors");
    const file = await readSafetensorsFile(path);
    const weight = file.tensors.get("features.3.weight")!.data as Float32Array;
    weight[5] = NaN;
    await writeSafetensorsFile(path, file.tensors, file.metadata);
    const nan = await runScript("evaluate.ts", ["--run", run, "--data", join(dir, "data")]);
    assert.notEqual(nan.code, 0);
    assert.match(
      nan.stderr,
      /model\.safetensors: features\.3\.weight\[5\] is NaN: the checkpoint holds weights that are not finite/,
    );

    weight[5] = 0;
    await writeSafetensorsFile(path, file.tensors, { ...file.metadata, model: "constructor" });
    const named = await runScript("evaluate.ts", ["--run", run, "--data", join(dir, "data")]);
    assert.notEqual(named.code, 0);
    assert.match(
      named.stderr,
      /unknown model "constructor" \(known: lenet, lenet5\); pass --run to pick another run/,
    );
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "evaluate --errors 0 writes no errors.svg and removes an old one; progress from the start",
  cli,
  async () => {
    const { dir, run } = await trainedRun({ train: 64, test: 40 });
    const args = ["--run", run, "--data", join(dir, "data")];
    const first = await runScript("evaluate.ts", [...args, "--batch-size", "1"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /Evaluating .* 0\/40 images/);
    const errors = join(run, "eval", "errors.svg");
    assert.ok(await Deno.stat(errors), "the first evaluation drew its errors");
    const none = await runScript("evaluate.ts", [...args, "--errors", "0"]);
    assert.equal(none.code, 0, none.stderr);
    assert.match(
      none.stdout,
      /wrote .*eval\.json and confusion\.svg \(no errors\.svg: --errors 0\)/,
    );
    assert.equal(await Deno.stat(errors).catch(() => null), null, "an old errors.svg is left");
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "embed says when --count exceeds the images and warns, with an estimate, before a long t-SNE",
  cli,
  async () => {
    const { dir, run } = await trainedRun({ train: 5200, test: 16 });
    const r = await runScript("embed.ts", [
      "--run",
      run,
      "--data",
      join(dir, "data"),
      "--count",
      "100000",
      "--iterations",
      "1",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /--count 100000 is more than the 5200 training images: embedding all 5200/,
    );
    assert.match(
      r.stdout,
      /Warning: t-SNE's cost grows with the square of the points: 5200 points take about \d+ s on llvmpipe/,
    );
    await Deno.remove(dir, { recursive: true });
  },
);

const FASHION = "/usr/share/datasets/fashion-mnist"; // Debian's dataset-fashion-mnist
const hasFashion = await Deno.stat(FASHION).then(() => true, () => false);

Deno.test({
  name: "Fashion-MNIST's first normalized batch has mean ~0 and standard deviation ~1",
  ignore: !hasFashion,
  ...cli,
  async fn() {
    const dir = await Deno.makeTempDir();
    const data = join(dir, "data");
    const download = await runScript("download.ts", [
      "--dataset",
      "fashion-mnist",
      "--source",
      FASHION,
      "--out",
      data,
    ]);
    assert.equal(download.code, 0, download.stderr);
    const r = await runScript("train.ts", [
      "--dataset",
      "fashion-mnist",
      "--data",
      data,
      "--epochs",
      "1",
      "--limit",
      "320",
      "--quiet",
      "--out",
      join(dir, "run"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Normalization: mean 0\.2860, std 0\.3530/);
    const mean = Number(/Batch mean: (-?[\d.]+)/.exec(r.stdout)![1]);
    const std = Number(/Batch standard deviation: ([\d.]+)/.exec(r.stdout)![1]);
    assert.ok(Math.abs(mean) < 0.1 && Math.abs(std - 1) < 0.1, `mean ${mean}, std ${std}`);
    await Deno.remove(dir, { recursive: true });
  },
});
