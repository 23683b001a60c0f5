import { join } from "node:path";
import { readSafetensorsFile } from "../lib/io/files.ts";
import { runScript, syntheticData } from "./util/synthetic.ts";

const SCRIPT = new URL("../scripts/train.ts", import.meta.url).pathname;

function train(args: string[]) {
  return runScript("train.ts", args);
}

async function tensorsOf(path: string) {
  const file = await readSafetensorsFile(path);
  return new Map(
    [...file.tensors].map((
      [k, t],
    ) => [k, { ...t, bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) }]),
  );
}

async function assertSameTensors(a: string, b: string) {
  const [x, y] = [await tensorsOf(a), await tensorsOf(b)];
  if ([...x.keys()].join() !== [...y.keys()].join()) {
    throw new Error(`${a} and ${b} hold different tensors`);
  }
  for (const [name, t] of x) {
    const u = y.get(name)!;
    if (
      t.dtype !== u.dtype || t.shape.join() !== u.shape.join() ||
      t.bytes.some((v, i) => v !== u.bytes[i])
    ) {
      throw new Error(`${name} differs between ${a} and ${b}`);
    }
  }
}

function withoutTimes(path: string) {
  return Deno.readTextFile(path).then((text) =>
    (JSON.parse(text) as Record<string, number>[]).map((
      { epoch, train_loss, train_acc, test_loss, test_acc },
    ) => ({
      epoch,
      train_loss,
      train_acc,
      test_loss,
      test_acc,
    }))
  );
}

const cli = { sanitizeResources: false, sanitizeOps: false };

Deno.test(
  "train writes a PyTorch-shaped checkpoint, metrics and curves, and the same seed gives the identical checkpoint",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 200, test: 50 });
    const common = ["--data", join(dir, "data"), "--epochs", "2", "--seed", "3", "--quiet"];
    const a = await train([...common, "--out", join(dir, "a")]);
    if (a.code !== 0) throw new Error(`train failed: ${a.stderr}`);
    for (
      const line of [
        "Total trainable parameters: 8,922",
        "Epoch 2",
        " Train → Loss: ",
        " Test → Loss: ",
      ]
    ) {
      if (!a.stdout.includes(line)) throw new Error(`the output lacks "${line}":\n${a.stdout}`);
    }
    const model = await readSafetensorsFile(join(dir, "a", "model.safetensors"));
    const expected: Record<string, [string, number[]]> = {
      "features.0.weight": ["F32", [16, 1, 4, 4]],
      "features.1.running_var": ["F32", [16]],
      "features.1.num_batches_tracked": ["I64", []],
      "features.3.weight": ["F32", [32, 16, 4, 4]],
      "features.4.num_batches_tracked": ["I64", []],
      "classifier.1.weight": ["F32", [10, 32]],
    };
    for (const [name, [dtype, shape]] of Object.entries(expected)) {
      const t = model.tensors.get(name);
      if (!t || t.dtype !== dtype || t.shape.join() !== shape.join()) {
        throw new Error(`${name}: ${t?.dtype} [${t?.shape}], expected ${dtype} [${shape}]`);
      }
    }
    // 200 images at batch 32: 7 steps an epoch, so 14 batches tracked after 2 epochs.
    const tracked = model.tensors.get("features.1.num_batches_tracked")!.data as BigInt64Array;
    if (tracked[0] !== 14n) throw new Error(`num_batches_tracked ${tracked[0]}, expected 14`);
    if (model.tensors.size !== 16) {
      throw new Error(
        `${model.tensors.size} tensors, expected 16 (the state_dict)`,
      );
    }
    if (model.metadata.epoch !== "2" || model.metadata.model !== "lenet") {
      throw new Error(
        JSON.stringify(model.metadata),
      );
    }
    const metrics = await withoutTimes(join(dir, "a", "metrics.json"));
    if (metrics.length !== 2) throw new Error(`metrics.json has ${metrics.length} epochs`);
    const curves = await Deno.readTextFile(join(dir, "a", "curves.svg"));
    if (!curves.startsWith("<svg") || !curves.includes("Accuracy Evolution")) {
      throw new Error(
        "curves.svg is not the chart",
      );
    }

    const b = await train([...common, "--out", join(dir, "b")]);
    if (b.code !== 0) throw new Error(`train failed: ${b.stderr}`);
    await assertSameTensors(
      join(dir, "a", "model.safetensors"),
      join(dir, "b", "model.safetensors"),
    );
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test("train for 1 epoch then --resume for 1 more equals 2 epochs straight", cli, async () => {
  const dir = await Deno.makeTempDir();
  await syntheticData(join(dir, "data"), { train: 200, test: 50 });
  const common = ["--data", join(dir, "data"), "--seed", "4", "--quiet"];
  const straight = await train([...common, "--epochs", "2", "--out", join(dir, "straight")]);
  const first = await train([...common, "--epochs", "1", "--out", join(dir, "resumed")]);
  const second = await train(["--resume", join(dir, "resumed"), "--epochs", "2", "--quiet"]);
  for (const r of [straight, first, second]) {
    if (r.code !== 0) throw new Error(`train failed: ${r.stderr}`);
  }
  if (!second.stdout.includes("Resuming")) throw new Error(`no resume notice:\n${second.stdout}`);
  await assertSameTensors(
    join(dir, "straight", "model.safetensors"),
    join(dir, "resumed", "model.safetensors"),
  );
  await assertSameTensors(
    join(dir, "straight", "optimizer.safetensors"),
    join(dir, "resumed", "optimizer.safetensors"),
  );
  const [s, r] = [
    await withoutTimes(join(dir, "straight", "metrics.json")),
    await withoutTimes(join(dir, "resumed", "metrics.json")),
  ];
  if (JSON.stringify(s) !== JSON.stringify(r)) {
    throw new Error(`metrics differ:\n${JSON.stringify(s)}\n${JSON.stringify(r)}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train rejects bad options with a clear message and a non-zero exit", cli, async () => {
  const cases: [string[], string][] = [
    [["--epochs", "0"], "--epochs must be a whole number >= 1"],
    [["--batch-size", "abc"], "--batch-size must be a whole number >= 1"],
    [["--lr", "-1"], "--lr must be a number > 0"],
    [["--weight-decay", "x"], "--weight-decay must be a number >= 0"],
    [["--limit", "2.5"], "--limit must be a whole number >= 1"],
    [["--model", "vgg"], "Allowed choices are lenet"],
    [["--frobnicate"], "unknown option '--frobnicate'"],
    [
      ["--resume", "/nonexistent/run"],
      "--resume /nonexistent/run: no /nonexistent/run/model.safetensors",
    ],
  ];
  for (const [args, message] of cases) {
    const r = await train(args);
    if (r.code === 0 || !r.stderr.includes(message)) {
      throw new Error(
        `${args.join(" ")}: exit ${r.code}, stderr:\n${r.stderr}\nexpected: ${message}`,
      );
    }
  }
});

Deno.test(
  "train refuses a batch too large for the adapter's binding limit before it allocates",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 40, test: 10 });
    const r = await train([
      "--data",
      join(dir, "data"),
      "--batch-size",
      "10000000",
      "--out",
      join(dir, "run"),
    ]);
    if (r.code === 0 || !r.stderr.includes("--batch-size 10000000 is too large for this adapter")) {
      throw new Error(`exit ${r.code}:\n${r.stderr}`);
    }
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "train stops on Ctrl-C after an epoch and keeps that epoch's checkpoint",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 320, test: 32 });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        SCRIPT,
        "--data",
        join(dir, "data"),
        "--epochs",
        "50",
        "--quiet",
        "--out",
        join(dir, "run"),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("Epoch 1\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    // Wait until the epoch's files are written, then interrupt during epoch 2 or later.
    for (
      let i = 0;
      i < 200 && !(await Deno.stat(join(dir, "run", "model.safetensors")).catch(() => null));
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGINT");
    const [status, err] = await Promise.all([child.status, new Response(child.stderr).text()]);
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    if (status.code !== 130 || !err.includes("is kept; continue with --resume")) {
      throw new Error(`exit ${status.code}, stderr:\n${err}`);
    }
    const model = await readSafetensorsFile(join(dir, "run", "model.safetensors"));
    const epoch = Number(model.metadata.epoch);
    if (!(epoch >= 1 && epoch < 50)) throw new Error(`checkpoint of epoch ${model.metadata.epoch}`);
    await Deno.remove(dir, { recursive: true });
  },
);
