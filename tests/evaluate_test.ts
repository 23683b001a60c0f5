import { join } from "node:path";
import { runScript, trainedRun } from "./util/synthetic.ts";
import { evaluateLogits } from "../lib/metrics.ts";
import { assertClose } from "./util/assert_close.ts";

const cli = { sanitizeResources: false, sanitizeOps: false };

Deno.test("evaluateLogits averages per-batch losses like the seed and counts first-max ties", () => {
  // Three rows, batch 2: batches [0,1] and [2]; row 1 ties (first max wins: class 0).
  const logits = [0, 0, 5, 5, 1, 3];
  const labels = [1, 1, 1];
  const e = evaluateLogits(logits, labels, { classes: 2, lossBatchSize: 2 });
  const ce = (z: number[], y: number) => Math.log(Math.exp(z[0]) + Math.exp(z[1])) - z[y];
  const expected = ((ce([0, 0], 1) + ce([5, 5], 1)) / 2 + ce([1, 3], 1)) / 2;
  assertClose([e.loss], [expected], { atol: 1e-12, rtol: 0 }, "loss");
  assertClose([e.accuracy], [100 / 3], { atol: 1e-12, rtol: 0 }, "accuracy");
  if (
    e.confusion[1].join() !== "2,1" || e.perClass[1].recall !== 1 / 3 ||
    e.perClass[0].precision !== 0
  ) {
    throw new Error(JSON.stringify(e));
  }
});

Deno.test(
  "evaluate reports the accuracy train reported for the same checkpoint and writes its files",
  cli,
  async () => {
    const { dir, run } = await trainedRun({ train: 160, test: 70 });
    // An eval batch that divides nothing: 70 test images in batches of 32, then 6.
    const r = await runScript("evaluate.ts", [
      "--run",
      run,
      "--data",
      join(dir, "data"),
      "--batch-size",
      "32",
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
    const metrics = JSON.parse(await Deno.readTextFile(join(run, "metrics.json")));
    const report = JSON.parse(await Deno.readTextFile(join(run, "eval", "eval.json")));
    assertClose([report.accuracy], [metrics[0].test_acc], { atol: 1e-9, rtol: 0 }, "accuracy");
    // train's loss is summed on the GPU in f32, evaluate's in f64 from the logits.
    assertClose([report.loss], [metrics[0].test_loss], { atol: 1e-5, rtol: 0 }, "loss");
    for (const file of ["confusion.svg", "errors.svg"]) {
      const svg = await Deno.readTextFile(join(run, "eval", file));
      if (!svg.startsWith("<svg")) throw new Error(`${file} is not an SVG`);
    }
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "evaluate names the file and the tensor when a checkpoint is not one of the model",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    const { writeSafetensorsFile } = await import("../lib/io/files.ts");
    await writeSafetensorsFile(join(dir, "model.safetensors"), {
      "features.0.weight": { dtype: "F32", shape: [16, 1, 3, 3], data: new Float32Array(144) },
    }, { model: "lenet" });
    const r = await runScript("evaluate.ts", ["--run", dir]);
    if (
      r.code === 0 ||
      !r.stderr.includes("is not a checkpoint of model lenet: missing features.0.bias")
    ) {
      throw new Error(`exit ${r.code}: ${r.stderr}`);
    }
    const missing = await runScript("evaluate.ts", ["--run", join(dir, "nothing")]);
    if (missing.code === 0 || !missing.stderr.includes("model.safetensors: file not found")) {
      throw new Error(`exit ${missing.code}: ${missing.stderr}`);
    }
    await Deno.remove(dir, { recursive: true });
  },
);
