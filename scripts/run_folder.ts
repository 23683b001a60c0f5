/**
 * Run folders (runs/<run>/) on disk: claiming one for a new run, one writer at a time (a lock
 * file with the writer's pid), the checkpoint written so that a crash at any instant leaves
 * one whole checkpoint (the previous or the new), and loading it back with errors that say
 * which file and what is wrong.
 *
 * The checkpoint is model.safetensors (PyTorch's state_dict) and optimizer.safetensors
 * (AdamW's moments). Both carry the same `checkpoint` id, `epoch` and `steps` in their
 * metadata. Saving writes both in full under `*.next.safetensors`, then the run's epoch
 * files (metrics.json, curves.svg), moves the current optimizer file aside to
 * optimizer.previous.safetensors, then renames the optimizer and the model into place: at
 * every instant model.safetensors has a partner with its id, in optimizer.safetensors or
 * optimizer.previous.safetensors, and metrics.json holds at least its epochs.
 * @module
 */

import { join } from "node:path";
import {
  exists,
  readSafetensorsFile,
  writeFileAtomic,
  writeSafetensorsFile,
} from "../lib/io/files.ts";
import type { Safetensors, StoredTensor } from "../lib/io/safetensors.ts";
import type { Normalization } from "../lib/io/mnist.ts";
import { type Model, type ModelOptions, MODELS } from "../lib/models.ts";
import { loadStateDict } from "../lib/checkpoint.ts";

const MODEL = "model.safetensors";
const OPTIMIZER = "optimizer.safetensors";
const PREVIOUS = "optimizer.previous.safetensors";
const LOCK = "train.lock";

/** What train used before it recorded the normalization: the notebook's MNIST constants. */
const NOTEBOOK_NORMALIZATION: Normalization = { mean: 0.1307, std: 0.3081 };

/** A run's checkpoint, loaded. */
export interface LoadedRun {
  dir: string;
  model: Model;
  params: Float32Array<ArrayBuffer>;
  /** Optimizer steps done (AdamW's t), from the metadata. */
  steps: number;
  metadata: Record<string, string>;
  /** The options train was started with (from the checkpoint's metadata). */
  options: Record<string, unknown>;
  /** The normalization the run trained with. */
  normalization: Normalization;
}

/** The newest folder under `root` that holds a model.safetensors. */
export async function newestRun(root = "runs"): Promise<string> {
  const found: { dir: string; mtime: number }[] = [];
  try {
    for await (const entry of Deno.readDir(root)) {
      const path = join(root, entry.name, MODEL);
      if (entry.isDirectory && await exists(path)) {
        found.push({
          dir: join(root, entry.name),
          mtime: (await Deno.stat(path)).mtime?.getTime() ?? 0,
        });
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (found.length === 0) {
    throw new Error(`no run with a ${MODEL} under ${root}/ (run: deno task train)`);
  }
  return found.sort((a, b) => b.mtime - a.mtime)[0].dir;
}

/**
 * Loads runs/<dir>/model.safetensors into the model its metadata names, built with the
 * options train recorded (lenet5's --activation, --pool, --c3). Refuses a model name that is
 * not one of ours and weights that are not finite.
 */
export async function loadRun(dir: string): Promise<LoadedRun> {
  const path = join(dir, MODEL);
  if (!(await exists(path))) throw new Error(`${path}: file not found (is ${dir} a run folder?)`);
  return runFromFile(dir, path, await readSafetensorsFile(path));
}

function runFromFile(dir: string, path: string, file: Safetensors): LoadedRun {
  const name = file.metadata.model ?? "lenet";
  if (!Object.hasOwn(MODELS, name)) {
    throw new Error(
      `${path}: unknown model "${name}" (known: ${Object.keys(MODELS).join(", ")}); ` +
        `pass --run to pick another run`,
    );
  }
  let options: Record<string, unknown>;
  try {
    options = JSON.parse(file.metadata.options ?? "{}");
  } catch {
    throw new Error(`${path}: its "options" metadata is not JSON`);
  }
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new Error(`${path}: its "options" metadata is not an object`);
  }
  let model: Model;
  try {
    model = MODELS[name as keyof typeof MODELS](options as ModelOptions);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  const { params } = loadStateDict(model, file, path);
  const bad = params.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) {
    const entry = model.layout.entries.find((e) => bad >= e.offset && bad < e.offset + e.size)!;
    throw new Error(
      `${path}: ${entry.name}[${bad - entry.offset}] is ${params[bad]}: the checkpoint holds ` +
        `weights that are not finite`,
    );
  }
  return {
    dir,
    model,
    params,
    steps: wholeMetadata(file.metadata, "steps", path) ?? 0,
    metadata: { ...file.metadata },
    options,
    normalization: normalizationOf(file.metadata, path),
  };
}

function normalizationOf(metadata: Record<string, string>, path: string): Normalization {
  if (metadata.mean === undefined && metadata.std === undefined) return NOTEBOOK_NORMALIZATION;
  const mean = Number(metadata.mean), std = Number(metadata.std);
  if (!Number.isFinite(mean) || !(std > 0) || !Number.isFinite(std)) {
    throw new Error(`${path}: its "mean" and "std" metadata must be numbers, std > 0`);
  }
  return { mean, std };
}

function wholeMetadata(metadata: Record<string, string>, key: string, path: string) {
  if (metadata[key] === undefined) return undefined;
  const n = Number(metadata[key]);
  if (!/^\d+$/.test(metadata[key]) || !Number.isSafeInteger(n)) {
    throw new Error(`${path}: its "${key}" metadata is "${metadata[key]}", not a whole number`);
  }
  return n;
}

/** One checkpoint: the model's and the optimizer's tensors, and the metadata of both. */
export interface Checkpoint {
  model: Map<string, StoredTensor>;
  optimizer: Map<string, StoredTensor>;
  /** Must hold `epoch` and `steps`; the `checkpoint` id is added. */
  metadata: Record<string, string> & { epoch: string; steps: string };
  /**
   * Files of the run that describe epochs (metrics.json, curves.svg), written before the
   * checkpoint moves into place: they may run one epoch ahead of it, never behind.
   */
  files?: Record<string, string>;
}

/**
 * Writes a checkpoint into `dir` so that a crash at any instant leaves one whole checkpoint
 * (see the module's comment). `crashAfter` is for tests: it throws after that many steps.
 */
export async function saveCheckpoint(
  dir: string,
  checkpoint: Checkpoint,
  crashAfter = Infinity,
): Promise<void> {
  const metadata = {
    ...checkpoint.metadata,
    checkpoint: `${checkpoint.metadata.epoch}-${checkpoint.metadata.steps}-${
      crypto.randomUUID().slice(0, 8)
    }`,
  };
  const next = (name: string) => join(dir, name.replace(".safetensors", ".next.safetensors"));
  const steps: (() => Promise<void>)[] = [
    () => writeSafetensorsFile(next(OPTIMIZER), checkpoint.optimizer, metadata),
    () => writeSafetensorsFile(next(MODEL), checkpoint.model, metadata),
    async () => {
      for (const [name, data] of Object.entries(checkpoint.files ?? {})) {
        await writeFileAtomic(join(dir, name), data);
      }
    },
    async () => {
      if (await exists(join(dir, OPTIMIZER))) {
        await Deno.rename(join(dir, OPTIMIZER), join(dir, PREVIOUS));
      }
    },
    () => Deno.rename(next(OPTIMIZER), join(dir, OPTIMIZER)),
    () => Deno.rename(next(MODEL), join(dir, MODEL)),
    () => Deno.remove(join(dir, PREVIOUS)).catch(() => {}),
  ];
  for (const [i, step] of steps.entries()) {
    if (i >= crashAfter) throw new Error(`saveCheckpoint: simulated crash after step ${i}`);
    await step();
  }
}

/** A run's checkpoint for --resume: the model and the optimizer file that belongs to it. */
export interface ResumePoint extends LoadedRun {
  epoch: number;
  optimizerFile: Safetensors;
  optimizerPath: string;
}

/**
 * The checkpoint in `dir` for --resume: model.safetensors and the optimizer file with the
 * same checkpoint id, epoch and steps. Refuses a mixed pair. Call with the lock held: a
 * partner left in optimizer.previous.safetensors by a crash is moved back into place, and
 * leftover temporary files are removed.
 */
export async function loadCheckpoint(dir: string): Promise<ResumePoint> {
  const path = join(dir, MODEL);
  if (!(await exists(path))) {
    throw new Error(`--resume ${dir}: no ${path} (a run folder has one after its first epoch)`);
  }
  const file = await readSafetensorsFile(path);
  const run = runFromFile(dir, path, file);
  const id = (f: Safetensors, p: string) =>
    `checkpoint ${f.metadata.checkpoint ?? "?"} (epoch ${f.metadata.epoch ?? "?"}, ${
      wholeMetadata(f.metadata, "steps", p) ?? "?"
    } steps)`;
  const candidates: { path: string; file: Safetensors }[] = [];
  for (const name of [OPTIMIZER, PREVIOUS]) {
    const p = join(dir, name);
    if (await exists(p)) candidates.push({ path: p, file: await readSafetensorsFile(p) });
  }
  const partner = candidates.find((c) => id(c.file, c.path) === id(file, path));
  if (!partner) {
    const found = candidates.map((c) => `${c.path} is ${id(c.file, c.path)}`).join("; ");
    throw new Error(
      `--resume ${dir}: ${path} is ${id(file, path)} but ${
        found || `there is no ${join(dir, OPTIMIZER)}`
      }: the model and optimizer state are not one checkpoint, refusing to resume`,
    );
  }
  if (partner.path.endsWith(PREVIOUS)) await Deno.rename(partner.path, join(dir, OPTIMIZER));
  else await Deno.remove(join(dir, PREVIOUS)).catch(() => {});
  await removeLeftovers(dir);
  const epoch = wholeMetadata(file.metadata, "epoch", path);
  if (epoch === undefined || run.metadata.steps === undefined) {
    throw new Error(`${path}: no "epoch" or "steps" in its metadata: not a checkpoint of train`);
  }
  return { ...run, epoch, optimizerFile: partner.file, optimizerPath: join(dir, OPTIMIZER) };
}

/** Removes what an interrupted save leaves: `*.tmp` and `*.next.safetensors` files. */
export async function removeLeftovers(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /(\.tmp|\.next\.safetensors)$/.test(entry.name)) {
      await Deno.remove(join(dir, entry.name)).catch(() => {});
    }
  }
}

/**
 * Takes `<dir>/train.lock`: an exclusive lock on the file (the system drops it when the
 * process ends, even by kill -9) and our pid in it. Throws, naming the holder, when a live
 * process holds it; a file left by a process that is gone is taken over with a notice.
 * Returns the function that releases it (also called on exit).
 */
export async function lockRun(dir: string, log = console.log): Promise<() => void> {
  const path = join(dir, LOCK);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true, create: true });
  } catch (e) {
    throw new Error(`${path}: cannot create the lock (${(e as Error).message})`);
  }
  let holder = await readLock(path);
  if (!(await file.tryLock(true))) {
    file.close();
    // The holder writes its pid just after it takes the lock: give it a moment to appear.
    for (let tries = 0; holder.pid === undefined && tries < 20; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      holder = await readLock(path);
    }
    throw new Error(
      `${dir} is being written by another training (process ${holder.pid ?? "?"}, started ` +
        `${holder.started ?? "?"}); wait for it to end, or stop it (${path})`,
    );
  }
  if (holder.pid !== undefined) {
    log(`Notice: ${path} was left by process ${holder.pid}, which is gone; taking it over.`);
  }
  const content = JSON.stringify({ pid: Deno.pid, started: new Date().toISOString() }) + "\n";
  await file.truncate(0);
  await file.write(new TextEncoder().encode(content));
  const release = () => {
    globalThis.removeEventListener("unload", release);
    try {
      Deno.removeSync(path);
      file.close();
    } catch { /* already released */ }
  };
  // Deno.exit() skips `finally` blocks but dispatches "unload".
  globalThis.addEventListener("unload", release);
  return release;
}

async function readLock(path: string): Promise<{ pid?: number; started?: string }> {
  try {
    const value = JSON.parse(await Deno.readTextFile(path));
    const pid = Number.isSafeInteger(value?.pid) && value.pid > 0 ? value.pid : undefined;
    return { pid, started: typeof value?.started === "string" ? value.started : undefined };
  } catch {
    return {}; // empty (just created) or not ours
  }
}

/**
 * The folder of a new run, created and locked. `out` undefined: runs/<timestamp>, made unique
 * (two runs started in the same millisecond get -2, -3...). An `out` that holds a run is
 * refused unless `force`, which deletes that run's files.
 */
export async function claimRunFolder(
  out: string | undefined,
  options: { force?: boolean; root?: string; log?: (line: string) => void } = {},
): Promise<{ dir: string; release: () => void }> {
  if (out === undefined) {
    const root = options.root ?? "runs";
    await Deno.mkdir(root, { recursive: true });
    const base = join(root, timestamp());
    for (let i = 1;; i++) {
      const dir = i === 1 ? base : `${base}-${i}`;
      try {
        await Deno.mkdir(dir);
      } catch (e) {
        if (e instanceof Deno.errors.AlreadyExists) continue;
        throw new Error(`${dir}: cannot create the run folder (${(e as Error).message})`);
      }
      return { dir, release: await lockRun(dir, options.log) };
    }
  }
  try {
    await Deno.mkdir(out, { recursive: true });
  } catch (e) {
    throw new Error(`${out}: cannot create the run folder (${(e as Error).message})`);
  }
  const release = await lockRun(out, options.log);
  try {
    const held = await runFiles(out);
    if (held.length > 0 && !options.force) {
      throw new Error(
        `${out} already holds a run (${held.join(", ")}); continue it with --resume ${out}, ` +
          `or replace it with --force`,
      );
    }
    for (const name of held) await Deno.remove(join(out, name), { recursive: true });
    await removeLeftovers(out);
  } catch (e) {
    release();
    throw e;
  }
  return { dir: out, release };
}

const RUN_FILES = [
  MODEL,
  OPTIMIZER,
  PREVIOUS,
  "metrics.json",
  "curves.svg",
  "eval",
  "embed",
];

async function runFiles(dir: string): Promise<string[]> {
  const held = [];
  for (const name of RUN_FILES) if (await exists(join(dir, name))) held.push(name);
  return held;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:]/g, "-").replace("T", "_").replace("Z", "");
}
