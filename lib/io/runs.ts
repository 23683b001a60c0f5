/**
 * Run folders (runs/<run>/): finding the newest one and loading its checkpoint into a model,
 * with errors that say which file and what is wrong.
 * @module
 */

import { join } from "node:path";
import { exists, readSafetensorsFile } from "./files.ts";
import { type Model, type ModelOptions, MODELS } from "../models.ts";
import { loadStateDict } from "../checkpoint.ts";

/** A run's checkpoint, loaded. */
export interface LoadedRun {
  dir: string;
  model: Model;
  params: Float32Array<ArrayBuffer>;
  steps: number;
  metadata: Record<string, string>;
  /** The options train was started with (from the checkpoint's metadata). */
  options: Record<string, unknown>;
}

/** The newest folder under `root` that holds a model.safetensors. */
export async function newestRun(root = "runs"): Promise<string> {
  const found: { dir: string; mtime: number }[] = [];
  try {
    for await (const entry of Deno.readDir(root)) {
      const path = join(root, entry.name, "model.safetensors");
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
    throw new Error(`no run with a model.safetensors under ${root}/ (run: deno task train)`);
  }
  return found.sort((a, b) => b.mtime - a.mtime)[0].dir;
}

/**
 * Loads runs/<dir>/model.safetensors into the model its metadata names (or `modelName`),
 * built with the options train recorded (lenet5's --activation, --pool, --c3).
 */
export async function loadRun(dir: string, modelName?: string): Promise<LoadedRun> {
  const path = join(dir, "model.safetensors");
  if (!(await exists(path))) throw new Error(`${path}: file not found (is ${dir} a run folder?)`);
  const file = await readSafetensorsFile(path);
  const name = modelName ?? file.metadata.model ?? "lenet";
  const make = MODELS[name];
  if (!make) {
    throw new Error(`${path}: unknown model "${name}" (known: ${Object.keys(MODELS).join(", ")})`);
  }
  let options: Record<string, unknown> = {};
  try {
    options = JSON.parse(file.metadata.options ?? "{}");
  } catch {
    throw new Error(`${path}: its "options" metadata is not JSON`);
  }
  let model: Model;
  try {
    model = make(options as ModelOptions);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  const { params, steps } = loadStateDict(model, file, path);
  return { dir, model, params, steps, metadata: { ...file.metadata }, options };
}
