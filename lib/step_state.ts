/**
 * The step state: two counters on the GPU (`step`, `batch`) that the kernels of a step read
 * and one tiny kernel advances at the end of the step. With it, a training step is a list of
 * ops made once and replayed every step, with no write from the CPU in between.
 *
 * - `step`: training steps done so far, over the whole run (AdamW's t = step + 1).
 * - `batch`: index of the current batch within the epoch or the evaluation pass (which rows
 *   of the epoch's order the gather reads, which row of `metrics` the loss writes).
 * @module
 */

import { kernel, type Op, op, readbackU32, type Runtime, type Tensor, tensor } from "./runtime.ts";

/** The counters as the CPU sees them. */
export interface StepCounters {
  step: number;
  batch: number;
}

/** The step state tensor and the ops that advance it. */
export interface StepState {
  /** u32 [2]: step, batch (the WGSL `struct StepState { step: u32, batch: u32 }`). */
  tensor: Tensor;
  /** Runs last in a training step: step += 1, batch += 1. */
  advanceTrain: Op;
  /** Runs last in an evaluation step: batch += 1 (the training step count stays). */
  advanceEval: Op;
  /**
   * Overwrites the given counters (queued with writeBuffer, seen by the next submit): at the
   * start of an epoch `set(rt, { batch: 0 })`, on resume `set(rt, { step, batch: 0 })`.
   */
  set(rt: Runtime, counters: Partial<StepCounters>): void;
  /** Reads both counters back (waits for the queue): for checkpoints and tests. */
  read(rt: Runtime): Promise<StepCounters>;
}

/**
 * Allocates the step state (both counters 0) and the ops that advance it.
 *
 * @example
 * ```ts
 * import { requestRuntime, submit } from "./runtime.ts";
 *
 * const rt = await requestRuntime("auto");
 * const state = await createStepState(rt);
 * state.set(rt, { step: 0, batch: 0 });
 * // After a step's ops:
 * submit(rt, [state.advanceTrain]);
 * ```
 */
export async function createStepState(rt: Runtime): Promise<StepState> {
  const t = tensor(rt, [2], { dtype: "u32", label: "step state" });
  const train = await kernel(rt, "step.wgsl", "advance_train");
  const evaluate = await kernel(rt, "step.wgsl", "advance_eval");
  return {
    tensor: t,
    advanceTrain: op(rt, train, [t], 1),
    advanceEval: op(rt, evaluate, [t], 1),
    set(rt, counters) {
      // Each counter is its own 4-byte write, so a partial set leaves the other as it is.
      const fields: (keyof StepCounters)[] = ["step", "batch"];
      fields.forEach((name, i) => {
        const value = counters[name];
        if (value === undefined) return;
        if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
          throw new Error(`step state: ${name} = ${value} is not a u32`);
        }
        rt.device.queue.writeBuffer(t.buffer, (t.offset + i) * 4, new Uint32Array([value]));
      });
    },
    async read(rt) {
      const [step, batch] = await readbackU32(rt, t);
      return { step, batch };
    },
  };
}
