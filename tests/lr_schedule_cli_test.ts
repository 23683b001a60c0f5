import { join } from "node:path";
import { readSafetensorsFile } from "../lib/io/files.ts";
import { runScript, scriptPath, syntheticData } from "./util/synthetic.ts";

const cli = { sanitizeResources: false, sanitizeOps: false };

async function train(args: string[]) {
  const r = await runScript("train.ts", args);
  if (r.code !== 0) throw new Error(`train ${args.join(" ")} failed:\n${r.stderr}`);
  return r;
}

/** Starts a training and interrupts it (Ctrl-C) once its first checkpoint is written. */
async function trainInterrupted(args: string[], run: string): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", scriptPath("train.ts"), ...args],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const model = join(run, "model.safetensors");
  for (let i = 0; i < 1200 && !(await Deno.stat(model).catch(() => null)); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGINT");
  const [status, err] = await Promise.all([child.status, new Response(child.stderr).text()]);
  if (status.code !== 130) throw new Error(`interrupted train: exit ${status.code}\n${err}`);
  return Number((await readSafetensorsFile(model)).metadata.epoch);
}

/** The model file's tensors as bytes, by name. */
async function modelBytes(run: string): Promise<Map<string, Uint8Array>> {
  const file = await readSafetensorsFile(join(run, "model.safetensors"));
  return new Map(
    [...file.tensors].map((
      [k, t],
    ) => [k, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]),
  );
}

function sameBytes(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>): boolean {
  return a.size === b.size && [...a].every(([k, x]) => {
    const y = b.get(k);
    return y !== undefined && y.length === x.length && x.every((v, i) => v === y[i]);
  });
}

Deno.test(
  "train --lr-schedule onecycle interrupted and resumed ends as the run straight, and not as constant",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 200, test: 50 });
    const common = ["--data", join(dir, "data"), "--seed", "5", "--quiet", "--epochs", "6"];
    const onecycle = [...common, "--lr", "3e-3", "--lr-schedule", "onecycle"];
    const straight = await train([...onecycle, "--out", join(dir, "straight")]);
    // 200 images at 32: 7 steps an epoch, 42 in all.
    if (!straight.stdout.includes("onecycle schedule from --lr 0.003 over 42 steps")) {
      throw new Error(`no schedule line:\n${straight.stdout}`);
    }
    const run = join(dir, "resumed");
    const stopped = await trainInterrupted([...onecycle, "--out", run], run);
    if (!(stopped >= 1 && stopped < 6)) throw new Error(`stopped after epoch ${stopped}`);
    // The schedule comes from the run's record: no --lr-schedule given here.
    await train(["--resume", run, "--quiet"]);
    if (!sameBytes(await modelBytes(join(dir, "straight")), await modelBytes(run))) {
      throw new Error(
        `resumed after epoch ${stopped}: the parameters differ from the straight run`,
      );
    }
    const constant = await train([...common, "--lr", "3e-3", "--out", join(dir, "constant")]);
    if (constant.stdout.includes("schedule")) throw new Error("constant prints a schedule line");
    if (
      sameBytes(await modelBytes(join(dir, "straight")), await modelBytes(join(dir, "constant")))
    ) {
      throw new Error("onecycle trained the same parameters as constant");
    }
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test("train --resume refuses to stretch or change a run's lr schedule", cli, async () => {
  const dir = await Deno.makeTempDir();
  await syntheticData(join(dir, "data"), { train: 64, test: 32 });
  const run = join(dir, "run");
  await train([
    "--data",
    join(dir, "data"),
    "--epochs",
    "1",
    "--quiet",
    "--lr-schedule",
    "cosine",
    "--out",
    run,
  ]);
  const cases: [string[], string][] = [
    [["--epochs", "2"], "spreads its cosine learning-rate schedule over 1 epoch;"],
    [["--epochs", "2", "--lr-schedule", "constant"], "--lr-schedule constant contradicts"],
  ];
  for (const [args, message] of cases) {
    const r = await runScript("train.ts", ["--resume", run, "--quiet", ...args]);
    if (r.code === 0 || !r.stderr.includes(message)) {
      throw new Error(
        `${args.join(" ")}: exit ${r.code}, stderr:\n${r.stderr}\nexpected: ${message}`,
      );
    }
  }
  await Deno.remove(dir, { recursive: true });
});
