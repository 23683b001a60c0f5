/**
 * AdamW (torch.optim.AdamW) as one dispatch over the flat parameter buffer: parameters,
 * gradients and both moments share one layout, so one kernel updates every tensor of the
 * model at once. The step number comes from the step state on the GPU (lib/step_state.ts).
 * @module
 */

import { type LrSchedule, SCHEDULE_ROW, scheduleTable } from "./lr_schedule.ts";
import {
  grid,
  kernel,
  type Op,
  op,
  type Runtime,
  type Tensor,
  tensor,
  uniform,
  upload,
  view,
} from "./runtime.ts";

/** What {@linkcode createAdamW} updates, and its hyperparameters (PyTorch's defaults). */
export interface AdamWOptions {
  /** The flat parameter buffer; its first `n` floats are trained. */
  params: Tensor;
  /** The flat gradient buffer, same layout as `params`. */
  grads: Tensor;
  /** The step state: t = step + 1. */
  state: Tensor;
  /** Trainable floats at the start of the flat buffer, a multiple of 4. */
  n: number;
  /** Default 1e-3: the rate, or the schedule's base (OneCycleLR's max_lr). */
  lr?: number;
  /**
   * How the rate (and, under onecycle, beta1) moves along the run's steps (default
   * constant). Its rows are read from the step count on the GPU; see lib/lr_schedule.ts.
   */
  schedule?: LrSchedule;
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, default 1e-2 (PyTorch's AdamW default; the seed uses 1e-4). */
  weightDecay?: number;
}

/** The optimizer: its op and its state (PyTorch's exp_avg and exp_avg_sq), for checkpoints. */
export interface AdamW {
  /** Updates params[0..n) from grads[0..n) with t = step + 1. */
  op: Op;
  /** exp_avg f32 [n], zero at first. */
  m: Tensor;
  /** exp_avg_sq f32 [n], zero at first. */
  v: Tensor;
  /** The schedule table f32 [rows, 4] (lr, 1 - lr wd, 1 - beta1, ln beta1 per step). */
  schedule: Tensor;
}

/**
 * Makes the AdamW op over the first `n` floats of the flat buffers, with moments allocated
 * zeroed. Scalars derived from the hyperparameters (1 - beta, ln beta, 1 - lr * wd) are
 * computed here in float64, as PyTorch computes them in Python floats, for every step of
 * the schedule at once.
 *
 * @example
 * ```ts
 * import { requestRuntime, submit, tensor } from "./runtime.ts";
 * import { createStepState } from "./step_state.ts";
 *
 * const rt = await requestRuntime("auto");
 * const params = tensor(rt, [64], { label: "params" });
 * const grads = tensor(rt, [64], { label: "grads" });
 * const state = await createStepState(rt);
 * const adamw = await createAdamW(rt, {
 *   params, grads, state: state.tensor, n: 64, lr: 1e-3, weightDecay: 1e-4,
 * });
 * // After a step's forward and backward:
 * submit(rt, [adamw.op, state.advanceTrain]);
 * ```
 */
export async function createAdamW(rt: Runtime, options: AdamWOptions): Promise<AdamW> {
  const { params, grads, state, n } = options;
  const { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 1e-2 } = options;
  const { schedule = { kind: "constant" } } = options;
  const [beta1, beta2] = betas;
  if (!Number.isInteger(n) || n < 4 || n % 4 !== 0) {
    throw new Error(`adamw: n = ${n} must be a positive multiple of 4 (the layout pads to 64)`);
  }
  if (params.size < n || grads.size < n) {
    throw new Error(
      `adamw: ${n} floats to update in params [${params.size}], grads [${grads.size}]`,
    );
  }
  if (!(beta1 > 0 && beta1 < 1 && beta2 > 0 && beta2 < 1)) {
    throw new Error(`adamw: betas [${betas}] must lie in (0, 1)`);
  }
  const m = tensor(rt, [n], { label: "adamw exp_avg" });
  const v = tensor(rt, [n], { label: "adamw exp_avg_sq" });
  const rows = scheduleTable(schedule, { lr, beta1, weightDecay });
  const table = tensor(rt, [rows.length / SCHEDULE_ROW, SCHEDULE_ROW], {
    label: "adamw schedule",
  });
  upload(rt, table, rows);
  const hyper = uniform(rt, "adamw", {
    n,
    rows: rows.length / SCHEDULE_ROW,
    "f32:beta2": beta2,
    "f32:one_minus_beta2": 1 - beta2,
    "f32:log_beta2": Math.log(beta2),
    "f32:eps": eps,
  });
  // Four vec4s an invocation: the step's scalars once for them (1.4x on LeNet-5's 61,706).
  const WORKGROUP = 64, ELEMENTS = 4;
  const k = await kernel(rt, "adamw.wgsl", "step", { WORKGROUP, ELEMENTS });
  const p = view(params, params.offset, [n], "adamw params");
  const g = view(grads, grads.offset, [n], "adamw grads");
  const update = op(
    rt,
    k,
    [p, g, m, v, state, hyper, table],
    grid(n / 4, WORKGROUP * ELEMENTS),
  );
  return { op: update, m, v, schedule: table };
}
