import assert from "node:assert/strict";
import { join } from "node:path";
import { lenet } from "../lib/models.ts";
import { optimizerDict, stateDict } from "../lib/checkpoint.ts";
import { claimRunFolder, loadCheckpoint, lockRun, saveCheckpoint } from "../scripts/run_folder.ts";

function checkpointOf(epoch: number) {
  const model = lenet();
  const params = new Float32Array(model.layout.size).fill(epoch);
  const moments = {
    m: new Float32Array(model.layout.trainableSize).fill(epoch),
    v: new Float32Array(model.layout.trainableSize).fill(epoch),
  };
  return {
    model: stateDict(model, params, 7 * epoch),
    optimizer: optimizerDict(model, moments),
    metadata: { model: "lenet", epoch: String(epoch), steps: String(7 * epoch), options: "{}" },
    files: { "metrics.json": String(epoch) },
  };
}

const names = async (dir: string) =>
  (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

Deno.test("a save interrupted at any step leaves one whole checkpoint, the old or the new", async () => {
  for (let crashAfter = 0; crashAfter <= 7; crashAfter++) {
    const dir = await Deno.makeTempDir();
    await saveCheckpoint(dir, checkpointOf(1));
    await saveCheckpoint(dir, checkpointOf(2), crashAfter).catch(() => {});
    const point = await loadCheckpoint(dir);
    assert.ok(point.epoch === 1 || point.epoch === 2, `crash after ${crashAfter}`);
    assert.equal(point.params[0], point.epoch, "the weights are of the checkpoint's epoch");
    assert.equal(Number(point.optimizerFile.metadata.epoch), point.epoch);
    assert.equal(
      (point.optimizerFile.tensors.get("classifier.1.bias.exp_avg")!.data as Float32Array)[0],
      point.epoch,
    );
    assert.equal(point.epoch, crashAfter >= 6 ? 2 : 1, `crash after step ${crashAfter}`);
    // The epoch files are written before the checkpoint moves: never behind it.
    const metrics = await Deno.readTextFile(join(dir, "metrics.json"));
    assert.ok(Number(metrics) >= point.epoch, `metrics.json of epoch ${metrics}`);
    // loadCheckpoint put the partner in place and removed the leftovers.
    assert.deepEqual(await names(dir), [
      "metrics.json",
      "model.safetensors",
      "optimizer.safetensors",
    ]);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCheckpoint refuses a model and optimizer of different checkpoints", async () => {
  const [a, b] = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  await saveCheckpoint(a, checkpointOf(1));
  await saveCheckpoint(b, checkpointOf(2));
  await Deno.copyFile(join(b, "optimizer.safetensors"), join(a, "optimizer.safetensors"));
  await assert.rejects(
    () => loadCheckpoint(a),
    /model\.safetensors is checkpoint 1-7-\w+ \(epoch 1, 7 steps\) but .*optimizer\.safetensors is checkpoint 2-14-\w+ \(epoch 2, 14 steps\): the model and optimizer state are not one checkpoint/,
  );
  await Deno.remove(join(a, "optimizer.safetensors"));
  await assert.rejects(() => loadCheckpoint(a), /there is no .*optimizer\.safetensors/);
  for (const d of [a, b]) await Deno.remove(d, { recursive: true });
});

Deno.test("a run folder has one writer; a lock left by a killed process is taken over", async () => {
  const dir = await Deno.makeTempDir();
  const release = await lockRun(dir, () => {});
  // Another process trying the same folder is refused, naming us.
  const other = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { lockRun } from "${new URL("../scripts/run_folder.ts", import.meta.url)}";
      await lockRun(${
        JSON.stringify(dir)
      }).catch((e) => { console.log(e.message); Deno.exit(3); });`,
    ],
    stdout: "piped",
  }).output();
  assert.equal(other.code, 3);
  assert.match(
    new TextDecoder().decode(other.stdout),
    new RegExp(`being written by another training \\(process ${Deno.pid}`),
  );
  release();
  // kill -9 leaves the file (the lock itself goes with the process).
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { lockRun } from "${new URL("../scripts/run_folder.ts", import.meta.url)}";
      await lockRun(${
        JSON.stringify(dir)
      }); console.log("locked"); await new Promise(() => setInterval(() => {}, 1000));`,
    ],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  assert.match((await reader.read()).value ?? "", /locked/);
  child.kill("SIGKILL");
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel().catch(() => {});
  const notices: string[] = [];
  const again = await lockRun(dir, (line) => notices.push(line));
  assert.match(notices.join("\n"), new RegExp(`left by process ${child.pid}, which is gone`));
  again();
  assert.deepEqual(await names(dir), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("two runs claimed at the same instant get distinct folders; a finished run needs --force", async () => {
  const root = await Deno.makeTempDir();
  const claims = await Promise.all([1, 2, 3].map(() => claimRunFolder(undefined, { root })));
  assert.equal(new Set(claims.map((c) => c.dir)).size, 3);
  claims.forEach((c) => c.release());

  const out = join(root, "run");
  const first = await claimRunFolder(out);
  await saveCheckpoint(out, checkpointOf(1));
  await assert.rejects(() => claimRunFolder(out), /being written by another training/);
  first.release();
  await assert.rejects(
    () => claimRunFolder(out),
    /already holds a run \(model\.safetensors, optimizer\.safetensors, metrics\.json\); continue it with --resume .*, or replace it with --force/,
  );
  const forced = await claimRunFolder(out, { force: true });
  assert.deepEqual(await names(out), ["train.lock"]);
  forced.release();
  await Deno.remove(root, { recursive: true });
});
