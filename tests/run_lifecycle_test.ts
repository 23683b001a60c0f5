/**
 * A run's life as a careful user meets it: resume (of every model, of the run's own plan),
 * mixed checkpoints, leftovers, one writer per folder, no silent overwrite, interruption by
 * Ctrl-C, SIGTERM or an error with the terminal restored.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensorsFile, writeSafetensorsFile } from "../lib/io/files.ts";
import {
  runScript,
  SCRIPT_PERMISSIONS,
  scriptPath,
  syntheticData,
  trainedRun,
} from "./util/synthetic.ts";

const cli = { sanitizeResources: false, sanitizeOps: false };
const train = (args: string[], cwd?: string) => runScript("train.ts", args, { cwd });

function ok(r: { code: number; stdout: string; stderr: string }, what: string) {
  assert.equal(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
}

async function bytes(path: string) {
  return await Deno.readFile(path);
}

/** Training figures of metrics.json, without the times. */
async function figures(run: string) {
  const records = JSON.parse(await Deno.readTextFile(join(run, "metrics.json")));
  return records.map((
    r: Record<string, unknown>,
  ) => [r.epoch, r.train_loss, r.test_loss, r.test_acc]);
}

/** Waits until `path` exists (a checkpoint after an epoch). */
async function waitFor(path: string) {
  for (let i = 0; i < 1200; i++) {
    if (await Deno.stat(path).catch(() => null)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${path} did not appear`);
}

Deno.test(
  "LeNet-5: 1 epoch and --resume equal 2 epochs straight, with AdamW's steps restored",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 200, test: 50 });
    const common = ["--data", join(dir, "data"), "--model", "lenet5", "--seed", "5", "--quiet"];
    ok(await train([...common, "--epochs", "2", "--out", join(dir, "straight")]), "straight");
    ok(await train([...common, "--epochs", "1", "--out", join(dir, "resumed")]), "first epoch");
    const second = await train(["--resume", join(dir, "resumed"), "--epochs", "2", "--quiet"]);
    ok(second, "resume");
    // 200 images at batch 32: 7 steps.
    assert.match(second.stdout, /Resuming .* after epoch 1 \(7 steps\)/);
    for (const file of ["model.safetensors", "optimizer.safetensors"]) {
      const [a, b] = [
        await readSafetensorsFile(join(dir, "straight", file)),
        await readSafetensorsFile(join(dir, "resumed", file)),
      ];
      for (const [name, t] of a.tensors) {
        assert.deepEqual(b.tensors.get(name)!.data, t.data, `${file}: ${name}`);
      }
    }
    assert.deepEqual(await figures(join(dir, "resumed")), await figures(join(dir, "straight")));
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "SIGTERM stops like Ctrl-C, and --resume continues to the run's own --epochs",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 3000, test: 32 });
    const run = join(dir, "run");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...SCRIPT_PERMISSIONS,
        scriptPath("train.ts"),
        "--data",
        join(dir, "data"),
        "--epochs",
        "3",
        "--quiet",
        "--out",
        run,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]);
    await waitFor(join(run, "model.safetensors"));
    child.kill("SIGTERM");
    const [status, [, err]] = await Promise.all([child.status, output]);
    assert.equal(status.code, 130, err);
    assert.match(err, /SIGTERM: stopping after the current steps/);
    assert.match(
      err,
      new RegExp(
        `\\nInterrupted: the checkpoint of epoch 1 in ${run} is kept; continue with --resume ${run}\\n$`,
      ),
    );
    const resumed = await train(["--resume", run, "--quiet"]);
    ok(resumed, "resume");
    assert.match(resumed.stdout, /Resuming .* after epoch 1 \(94 steps\)/);
    assert.match(resumed.stdout, /Epoch 3\n/);
    assert.equal((await figures(run)).length, 3);
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "--resume refuses options that contradict the run, says a new total, and says when nothing is left",
  cli,
  async () => {
    const { dir, run } = await trainedRun({ train: 200, test: 50 });
    const before = await bytes(join(run, "model.safetensors"));
    const nothing = await train(["--resume", run, "--batch-size", "32"]);
    ok(nothing, "resume of a finished run");
    assert.match(
      nothing.stdout,
      /Nothing to do: .* has trained 1 of 1 epochs; give --epochs with a larger total/,
    );
    assert.doesNotMatch(nothing.stdout, /Saved/);
    assert.deepEqual(await bytes(join(run, "model.safetensors")), before);
    const refused: [string[], RegExp][] = [
      [["--lr", "0.1"], /--lr 0\.1 contradicts the run in .*, which has 0\.001/],
      [["--model", "lenet5"], /--model lenet5 contradicts the run in .*, which has lenet/],
      [["--seed", "9"], /--seed 9 contradicts the run/],
      [["--limit", "100"], /--limit 100 contradicts the run in .*, which has none/],
      [["--out", join(dir, "elsewhere")], /a resumed run stays in its folder/],
      [["--force"], /--force replaces a run and --resume continues it/],
    ];
    for (const [args, message] of refused) {
      const r = await train(["--resume", run, "--epochs", "2", ...args]);
      assert.notEqual(r.code, 0, args.join(" "));
      assert.match(r.stderr, message);
    }
    assert.deepEqual(await bytes(join(run, "model.safetensors")), before);
    // Recorded options come from a file: checked as the command line checks them.
    const model = await readSafetensorsFile(join(run, "model.safetensors"));
    const options = JSON.parse(model.metadata.options);
    await writeSafetensorsFile(join(run, "model.safetensors"), model.tensors, {
      ...model.metadata,
      options: JSON.stringify({ ...options, batchSize: -3 }),
    });
    const tampered = await train(["--resume", run, "--epochs", "2"]);
    assert.notEqual(tampered.code, 0);
    assert.match(
      tampered.stderr,
      /model\.safetensors: its recorded option batchSize = -3 is not valid/,
    );
    await writeSafetensorsFile(join(run, "model.safetensors"), model.tensors, model.metadata);
    const more = await train(["--resume", run, "--epochs", "2", "--quiet"]);
    ok(more, "resume to 2 epochs");
    assert.match(more.stdout, /Training to 2 epochs in total \(the run planned 1\)\./);
    assert.equal((await figures(run)).length, 2);
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "--resume refuses a model and optimizer state of different epochs, and removes leftover temporary files",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 200, test: 50 });
    const common = ["--data", join(dir, "data"), "--quiet"];
    ok(await train([...common, "--epochs", "1", "--out", join(dir, "one")]), "one");
    ok(await train([...common, "--epochs", "2", "--out", join(dir, "two")]), "two");
    await Deno.copyFile(
      join(dir, "two", "optimizer.safetensors"),
      join(dir, "one", "optimizer.safetensors"),
    );
    const mixed = await train(["--resume", join(dir, "one"), "--epochs", "3"]);
    assert.notEqual(mixed.code, 0);
    assert.match(
      mixed.stderr,
      /\(epoch 1, 7 steps\) but .*optimizer\.safetensors is checkpoint .*\(epoch 2, 14 steps\): the model and optimizer state are not one checkpoint, refusing to resume/,
    );

    const leftover = join(dir, "two", "model.safetensors.0a1b2c3d.tmp");
    await Deno.writeTextFile(leftover, "half a file");
    ok(await train(["--resume", join(dir, "two"), "--epochs", "3", "--quiet"]), "resume");
    assert.equal(await Deno.stat(leftover).catch(() => null), null, "the leftover is still there");
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "one writer per run folder; a finished run is kept unless --force; default runs get their own folders",
  cli,
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 200, test: 50 });
    const args = ["--data", join(dir, "data"), "--epochs", "1", "--quiet"];
    const out = join(dir, "run");
    const both = await Promise.all([
      train([...args, "--out", out]),
      train([...args, "--out", out]),
    ]);
    assert.deepEqual(
      both.map((r) => r.code === 0).sort(),
      [false, true],
      both.map((r) => r.stderr).join("\n"),
    );
    const loser = both.find((r) => r.code !== 0)!;
    assert.match(
      loser.stderr,
      /is being written by another training \(process \d+|already holds a run/,
    );

    const again = await train([...args, "--out", out, "--seed", "3"]);
    assert.notEqual(again.code, 0);
    assert.match(
      again.stderr,
      /already holds a run \(.*\); continue it with --resume .*, or replace it with --force/,
    );
    const forced = await train([...args, "--out", out, "--seed", "3", "--force"]);
    ok(forced, "--force");
    assert.equal(
      JSON.parse((await readSafetensorsFile(join(out, "model.safetensors"))).metadata.options).seed,
      3,
    );

    // Two default runs started together (same second, likely the same millisecond's folder name).
    const defaults = await Promise.all([train(args, dir), train(args, dir)]);
    defaults.forEach((r) => ok(r, "default run"));
    const folders = await Array.fromAsync(Deno.readDir(join(dir, "runs")));
    assert.equal(folders.length, 2);
    await Deno.remove(dir, { recursive: true });
  },
);

/** Runs a script (train) under a pseudo-terminal (util-linux `script`), as a user sees it. */
function inTerminal(args: string[], script = "train.ts") {
  const command = [Deno.execPath(), "run", ...SCRIPT_PERMISSIONS, scriptPath(script), ...args]
    .map((a) => `'${a}'`).join(" ");
  return new Deno.Command("script", {
    args: ["-qec", `exec ${command}`, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

/** The terminal is back: cursor shown and line wrap on after the last time they were turned off. */
function assertRestored(screen: string) {
  const hidden = screen.lastIndexOf("\x1b[?25l"), nowrap = screen.lastIndexOf("\x1b[?7l");
  assert.ok(hidden >= 0, "the progress bar never ran (no cursor hiding)");
  assert.ok(screen.indexOf("\x1b[?25h", hidden) > hidden, "the cursor is left hidden");
  assert.ok(screen.indexOf("\x1b[?7h", nowrap) > nowrap, "line wrap is left off");
}

Deno.test(
  "Ctrl-C and an error mid-epoch restore the terminal and print their last message whole",
  // util-linux's `script` gives the run a terminal.
  { ...cli, ignore: Deno.build.os !== "linux" },
  async () => {
    const dir = await Deno.makeTempDir();
    await syntheticData(join(dir, "data"), { train: 3000, test: 32 });
    const run = join(dir, "run");
    const child = inTerminal(["--data", join(dir, "data"), "--epochs", "50", "--out", run]);
    // Interrupt with the second epoch's bar on the screen.
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let screen = "";
    while (!/Epoch 2\/50 \[TRAIN\][^\n]*\| loss \d/.test(screen)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`train ended early:\n${screen}`);
      screen += value;
    }
    // Ctrl-C typed on the terminal: its line discipline sends SIGINT to the training.
    const keyboard = child.stdin.getWriter();
    await keyboard.write(new Uint8Array([3]));
    await keyboard.close();
    for (let r = await reader.read(); !r.done; r = await reader.read()) screen += r.value;
    await child.status;
    const text = screen.replaceAll("\r\n", "\n");
    assertRestored(text);
    assert.match(
      text,
      new RegExp(
        `\\nInterrupted: the checkpoint of epoch \\d+ in ${run} is kept; continue with --resume ${run}\\n$`,
      ),
    );

    // A learning rate of 1e30 makes the loss NaN within the first epoch: an error mid-pass.
    const failing = inTerminal([
      "--data",
      join(dir, "data"),
      "--lr",
      "1e30",
      "--out",
      join(dir, "nan"),
    ]);
    await failing.stdin.close();
    const [status, out] = await Promise.all([failing.status, new Response(failing.stdout).text()]);
    assert.equal(status.code, 1);
    const failed = out.replaceAll("\r\n", "\n");
    assertRestored(failed);
    assert.match(failed, /\nerror: [^\n]*loss of batch \d+ is (NaN|Infinity)[^\n]*\n$/);
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "Ctrl-C during evaluate's progress bar restores the terminal and says it stopped",
  { ...cli, ignore: Deno.build.os !== "linux" },
  async () => {
    const { dir, run } = await trainedRun({ train: 64, test: 3000 });
    const child = inTerminal(
      ["--run", run, "--data", join(dir, "data"), "--batch-size", "1"],
      "evaluate.ts",
    );
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let screen = "";
    while (!/Evaluating [^\n]* [1-9]\d*\/3000 images/.test(screen)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`evaluate ended early:\n${screen}`);
      screen += value;
    }
    const keyboard = child.stdin.getWriter();
    await keyboard.write(new Uint8Array([3]));
    await keyboard.close();
    for (let r = await reader.read(); !r.done; r = await reader.read()) screen += r.value;
    const status = await child.status;
    const text = screen.replaceAll("\r\n", "\n");
    assert.equal(status.code, 130, text);
    assertRestored(text);
    assert.match(text, /\nCtrl-C: stopped\.\n$/);
    await Deno.remove(dir, { recursive: true });
  },
);
