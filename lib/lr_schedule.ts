/**
 * Learning-rate schedules as PyTorch's schedulers compute them, stepped once a batch:
 * `constant` (no scheduler: the notebook's), `cosine` (CosineAnnealingLR, T_max = the run's
 * steps, eta_min 0) and `onecycle` (OneCycleLR with its defaults: pct_start 0.3, cos anneal,
 * div_factor 25, final_div_factor 1e4, and cycle_momentum on, so AdamW's beta1 runs
 * 0.95 -> 0.85 -> 0.95 against the learning rate).
 *
 * The values are computed here in float64, with PyTorch's own formulas (the cosine's
 * recursive form included), once for the whole run: one row a step of what AdamW needs
 * (lr, 1 - lr * weight_decay, 1 - beta1, ln beta1), cast to f32 and uploaded once. The
 * AdamW kernel reads the row of its step from the step count on the GPU, so no step writes
 * anything from the CPU.
 * @module
 */

/** The schedule kinds `--lr-schedule` offers. */
export const LR_SCHEDULES = ["constant", "cosine", "onecycle"] as const;

/** One of {@linkcode LR_SCHEDULES}. */
export type LrScheduleKind = typeof LR_SCHEDULES[number];

/** A schedule over a run: its kind and, but for constant, the run's optimizer steps. */
export interface LrSchedule {
  kind: LrScheduleKind;
  /** Optimizer steps of the whole run (cosine's T_max, OneCycleLR's total_steps). */
  totalSteps?: number;
}

/** What step `step` (0-based: the step's optimizer update is the (step+1)-th) uses. */
export interface ScheduledStep {
  lr: number;
  beta1: number;
}

/** OneCycleLR's defaults (torch.optim.lr_scheduler.OneCycleLR). */
export const ONE_CYCLE = {
  pctStart: 0.3,
  divFactor: 25,
  finalDivFactor: 1e4,
  baseMomentum: 0.85,
  maxMomentum: 0.95,
} as const;

/** Floats in one row of {@linkcode scheduleTable}: lr, decay, one_minus_beta1, log_beta1. */
export const SCHEDULE_ROW = 4;

/**
 * The learning rate and beta1 of every step of the run, in float64, as PyTorch's scheduler
 * sets them before each optimizer step: `lr` is the base (OneCycleLR's max_lr), `beta1`
 * AdamW's (replaced by the cycled momentum under onecycle). Constant gives one entry, which
 * holds for every step.
 *
 * @example
 * ```ts
 * const steps = scheduledSteps({ kind: "cosine", totalSteps: 4 }, { lr: 1e-3, beta1: 0.9 });
 * steps.map((s) => s.lr); // [1e-3, 8.5355e-4, 5e-4, 1.4645e-4]
 * ```
 */
export function scheduledSteps(
  schedule: LrSchedule,
  base: ScheduledStep,
): ScheduledStep[] {
  checkSchedule(schedule);
  const { kind } = schedule;
  if (kind === "constant") return [{ ...base }];
  const total = schedule.totalSteps!;
  const steps: ScheduledStep[] = [];
  if (kind === "cosine") {
    // CosineAnnealingLR.get_lr, eta_min = 0, stepped once after every optimizer step: the
    // recursive ("chainable") form, as PyTorch computes it, from last_epoch = 0.
    let lr = base.lr;
    for (let e = 0; e < total; e++) {
      if (e === 0) {
        lr = base.lr;
      } else if ((e - 1 - total) % (2 * total) === 0) {
        lr = lr + base.lr * (1 - Math.cos(Math.PI / total)) / 2;
      } else {
        lr = (1 + Math.cos(Math.PI * e / total)) / (1 + Math.cos(Math.PI * (e - 1) / total)) * lr;
      }
      steps.push({ lr, beta1: base.beta1 });
    }
    return steps;
  }
  // OneCycleLR.get_lr, two phases, cos anneal, momentum cycled.
  const { pctStart, divFactor, finalDivFactor, baseMomentum, maxMomentum } = ONE_CYCLE;
  const initial = base.lr / divFactor;
  const phases = [
    {
      end: pctStart * total - 1,
      lr: [initial, base.lr],
      momentum: [maxMomentum, baseMomentum],
    },
    {
      end: total - 1,
      lr: [base.lr, initial / finalDivFactor],
      momentum: [baseMomentum, maxMomentum],
    },
  ];
  const anneal = (start: number, end: number, pct: number) =>
    end + (start - end) / 2.0 * (Math.cos(Math.PI * pct) + 1);
  for (let s = 0; s < total; s++) {
    let start = 0;
    for (const [i, phase] of phases.entries()) {
      if (s <= phase.end || i === phases.length - 1) {
        const pct = (s - start) / (phase.end - start);
        steps.push({
          lr: anneal(phase.lr[0], phase.lr[1], pct),
          beta1: anneal(phase.momentum[0], phase.momentum[1], pct),
        });
        break;
      }
      start = phase.end;
    }
  }
  return steps;
}

/**
 * The table AdamW reads, f32 [rows, 4]: per step lr, 1 - lr * weightDecay, 1 - beta1 and
 * ln(beta1), each computed in float64 (as PyTorch computes them in Python floats) and then
 * rounded once to f32. A step past the last row uses the last row.
 *
 * @example
 * ```ts
 * const table = scheduleTable({ kind: "constant" }, { lr: 1e-3, beta1: 0.9, weightDecay: 1e-4 });
 * table.length; // 4: one row, for every step
 * ```
 */
export function scheduleTable(
  schedule: LrSchedule,
  hyper: ScheduledStep & { weightDecay: number },
): Float32Array<ArrayBuffer> {
  const steps = scheduledSteps(schedule, hyper);
  const table = new Float32Array(steps.length * SCHEDULE_ROW);
  steps.forEach(({ lr, beta1 }, i) => {
    table.set([lr, 1 - lr * hyper.weightDecay, 1 - beta1, Math.log(beta1)], i * SCHEDULE_ROW);
  });
  return table;
}

/** Throws, saying what was expected, on a kind we lack or a run length that cannot be one. */
export function checkSchedule(schedule: LrSchedule): void {
  const { kind, totalSteps } = schedule;
  if (!LR_SCHEDULES.includes(kind)) {
    throw new Error(`lr schedule: "${kind}" is not one of ${LR_SCHEDULES.join(", ")}`);
  }
  if (kind === "constant") return;
  if (!Number.isInteger(totalSteps) || totalSteps! < 1) {
    throw new Error(
      `lr schedule ${kind}: totalSteps = ${totalSteps} must be a positive integer` +
        " (the run's optimizer steps)",
    );
  }
}
