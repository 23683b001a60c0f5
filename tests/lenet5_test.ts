import { join } from "node:path";
import { runScript, syntheticData } from "./util/synthetic.ts";
import { assertClose } from "./util/assert_close.ts";
import { findPython } from "./pytorch/python.ts";
import { lenet5, MODELS, summaryRows } from "../lib/models.ts";
import { readSafetensorsFile } from "../lib/io/files.ts";

const cli = { sanitizeResources: false, sanitizeOps: false };

/** seed_reference.py's LeNet5 state_dict: names and shapes, in order. */
const PYTORCH_LENET5: [string, number[]][] = [
  ["features.0.weight", [6, 1, 5, 5]],
  ["features.0.bias", [6]],
  ["features.3.weight", [16, 6, 5, 5]],
  ["features.3.bias", [16]],
  ["features.6.weight", [120, 16, 5, 5]],
  ["features.6.bias", [120]],
  ["classifier.1.weight", [84, 120]],
  ["classifier.1.bias", [84]],
  ["classifier.3.weight", [10, 84]],
  ["classifier.3.bias", [10]],
];

Deno.test("lenet5 has the state_dict of the seed's PyTorch LeNet5 and 61,706 parameters", () => {
  const model = lenet5();
  const names = model.layout.entries.map((e) => [e.name, e.shape]);
  if (JSON.stringify(names) !== JSON.stringify(PYTORCH_LENET5)) {
    throw new Error(`state_dict ${JSON.stringify(names)}`);
  }
  if (model.layout.trainableCount !== 61706) throw new Error(`${model.layout.trainableCount}`);
  const lecun = lenet5({ c3: "lecun" });
  const c3 = lecun.layout.entries.find((e) => e.name === "features.3.weight")!;
  if (lecun.layout.trainableCount !== 60806 || c3.shape.join() !== "60,5,5") {
    throw new Error(`lecun: ${lecun.layout.trainableCount}, features.3.weight [${c3.shape}]`);
  }
  // The activation and the pooling carry no parameters: the same state_dict for every choice.
  const modern = MODELS.lenet5({ activation: "relu", pool: "max" });
  if (
    JSON.stringify(modern.layout.entries.map((e) => e.name)) !==
      JSON.stringify(names.map((n) => n[0]))
  ) {
    throw new Error("relu/max changed the state_dict");
  }
  for (const bad of [{ activation: "gelu" }, { pool: "lp" }, { c3: "sparse" }]) {
    let message = "";
    try {
      lenet5(bad);
    } catch (e) {
      message = (e as Error).message;
    }
    if (!message.includes("choices:")) throw new Error(`${JSON.stringify(bad)}: "${message}"`);
  }
});

Deno.test("the lenet5 summary shows the seed's LeNet-5 table row by row", () => {
  const rows = summaryRows(lenet5(), 32).map((r) =>
    `${r.name} ${r.type} [${r.outputShape}] ${r.params}`
  );
  const expected = [
    "features.0 Conv2d [32,6,28,28] 156",
    "features.1 Tanh [32,6,28,28] 0",
    "features.2 AvgPool2d [32,6,14,14] 0",
    "features.3 Conv2d [32,16,10,10] 2416",
    "features.4 Tanh [32,16,10,10] 0",
    "features.5 AvgPool2d [32,16,5,5] 0",
    "features.6 Conv2d [32,120,1,1] 48120",
    "features.7 Tanh [32,120,1,1] 0",
    "classifier.0 Flatten [32,120] 0",
    "classifier.1 Linear [32,84] 10164",
    "classifier.2 Tanh [32,84] 0",
    "classifier.3 Linear [32,10] 850",
  ];
  if (rows.join("\n") !== expected.join("\n")) throw new Error(rows.join("\n"));
  const lecun = summaryRows(lenet5({ c3: "lecun", activation: "sigmoid", pool: "max" }), 1);
  const c3 = lecun.find((r) => r.name === "features.3")!;
  if (c3.type !== "Conv2dTable" || c3.params !== 1516 || lecun[1].type !== "Sigmoid") {
    throw new Error(JSON.stringify(lecun));
  }
});

Deno.test(
  "train --model lenet5: evaluate reproduces its accuracy and PyTorch's LeNet5 loads it strictly and agrees",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 160, test: 70 });
    const run = join(dir, "run");
    const trained = await runScript("train.ts", [
      "--model",
      "lenet5",
      "--data",
      join(dir, "data"),
      "--epochs",
      "1",
      "--quiet",
      "--out",
      run,
    ]);
    if (trained.code !== 0) throw new Error(trained.stderr);
    for (
      const line of ["Total trainable parameters: 61,706", "lenet5 (input)", "[32, 6, 28, 28]"]
    ) {
      if (!trained.stdout.includes(line)) throw new Error(`no "${line}" in:\n${trained.stdout}`);
    }
    const file = await readSafetensorsFile(join(run, "model.safetensors"));
    const options = JSON.parse(file.metadata.options);
    if (
      file.metadata.model !== "lenet5" || options.activation !== "tanh" || options.pool !== "avg" ||
      options.c3 !== "full"
    ) {
      throw new Error(JSON.stringify(file.metadata));
    }
    const metrics = JSON.parse(await Deno.readTextFile(join(run, "metrics.json")))[0];

    // 70 test images in batches of 32, then 6: a batch size that divides nothing.
    const evaluated = await runScript("evaluate.ts", [
      "--run",
      run,
      "--data",
      join(dir, "data"),
      "--batch-size",
      "32",
    ]);
    if (evaluated.code !== 0) throw new Error(evaluated.stderr);
    const report = JSON.parse(await Deno.readTextFile(join(run, "eval", "eval.json")));
    assertClose(
      [report.accuracy],
      [metrics.test_acc],
      { atol: 1e-9, rtol: 0 },
      "evaluate accuracy",
    );
    // train's loss is summed on the GPU in f32, evaluate's in f64 from the logits.
    assertClose([report.loss], [metrics.test_loss], { atol: 1e-5, rtol: 0 }, "evaluate loss");

    const python = await findPython(["torch"]);
    if (!python) {
      console.log("no python3 with torch: the PyTorch half of this test is skipped");
    } else {
      const script = new URL("./pytorch/load_checkpoint.py", import.meta.url).pathname;
      const r = await new Deno.Command(python, {
        args: [
          script,
          join(run, "model.safetensors"),
          join(dir, "data", "mnist", "test.safetensors"),
          "lenet5",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
      const torch = JSON.parse(new TextDecoder().decode(r.stdout));
      if (torch.tensors !== 10) throw new Error(`PyTorch read ${torch.tensors} tensors`);
      assertClose([torch.accuracy], [metrics.test_acc], { atol: 0, rtol: 0 }, "PyTorch accuracy");
      // f32 in both; different summation orders and tanh implementations: 1e-5 on a loss near 2.
      assertClose([torch.loss], [metrics.test_loss], { atol: 1e-5, rtol: 0 }, "PyTorch loss");
    }
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "train --c3 lecun --activation sigmoid --pool max records its options and evaluate rebuilds that model",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 100, test: 40 });
    const run = join(dir, "run");
    const args = ["--c3", "lecun", "--activation", "sigmoid", "--pool", "max"];
    const trained = await runScript("train.ts", [
      "--model",
      "lenet5",
      ...args,
      "--data",
      join(dir, "data"),
      "--epochs",
      "1",
      "--quiet",
      "--out",
      run,
    ]);
    if (trained.code !== 0) throw new Error(trained.stderr);
    for (const line of ["Total trainable parameters: 60,806", "features.3 (Conv2dTable)"]) {
      if (!trained.stdout.includes(line)) throw new Error(`no "${line}" in:\n${trained.stdout}`);
    }
    const file = await readSafetensorsFile(join(run, "model.safetensors"));
    const options = JSON.parse(file.metadata.options);
    const weight = file.tensors.get("features.3.weight")!;
    if (
      options.c3 !== "lecun" || options.activation !== "sigmoid" || options.pool !== "max" ||
      weight.shape.join() !== "60,5,5"
    ) {
      throw new Error(`${JSON.stringify(file.metadata)}; features.3.weight [${weight.shape}]`);
    }
    const evaluated = await runScript("evaluate.ts", ["--run", run, "--data", join(dir, "data")]);
    if (evaluated.code !== 0) throw new Error(evaluated.stderr);
    const metrics = JSON.parse(await Deno.readTextFile(join(run, "metrics.json")))[0];
    const report = JSON.parse(await Deno.readTextFile(join(run, "eval", "eval.json")));
    assertClose([report.accuracy], [metrics.test_acc], { atol: 1e-9, rtol: 0 }, "accuracy");
    assertClose([report.loss], [metrics.test_loss], { atol: 1e-5, rtol: 0 }, "loss");

    // The seed's model has none of these choices.
    const refused = await runScript("train.ts", ["--model", "lenet", "--c3", "lecun"]);
    if (refused.code === 0 || !refused.stderr.includes("--c3 applies to --model lenet5 only")) {
      throw new Error(`exit ${refused.code}: ${refused.stderr}`);
    }
    await Deno.remove(dir, { recursive: true });
  },
);
