import assert from "node:assert/strict";
import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, randomArray, tensorFrom, testRuntime } from "./util/gpu.ts";
import { adamwReference } from "./reference/adamw.ts";
import { findPython } from "./pytorch/python.ts";
import { createAdamW } from "../lib/adamw.ts";
import { type LrSchedule, scheduledSteps, scheduleTable } from "../lib/lr_schedule.ts";
import { createStepState } from "../lib/step_state.ts";
import { readback, submit, tensor, upload } from "../lib/runtime.ts";

const BASE = { lr: 3e-3, beta1: 0.9 };

/** The closed forms of PyTorch's documentation, in float64, written apart from the library. */
function closedForm(kind: "cosine" | "onecycle", total: number, step: number) {
  if (kind === "cosine") {
    // eta_t = eta_min + (eta_max - eta_min) (1 + cos(pi t / T_max)) / 2, eta_min = 0.
    return { lr: BASE.lr * (1 + Math.cos(Math.PI * step / total)) / 2, beta1: BASE.beta1 };
  }
  // Warm-up from max_lr / 25 to max_lr over steps 0..0.3 T - 1, then down to
  // max_lr / 25 / 1e4 at step T - 1; beta1 from 0.95 to 0.85 and back, against it.
  const cos = (from: number, to: number, pct: number) =>
    to + (from - to) * (1 + Math.cos(Math.PI * pct)) / 2;
  const peak = 0.3 * total - 1;
  if (step <= peak) {
    const pct = step / peak;
    return { lr: cos(BASE.lr / 25, BASE.lr, pct), beta1: cos(0.95, 0.85, pct) };
  }
  const pct = (step - peak) / (total - 1 - peak);
  return { lr: cos(BASE.lr, BASE.lr / 25 / 1e4, pct), beta1: cos(0.85, 0.95, pct) };
}

Deno.test("lr schedules follow PyTorch's formulas in float64 at every step", () => {
  for (const kind of ["cosine", "onecycle"] as const) {
    // 1 and 3 steps: OneCycleLR's warm-up ends before step 0; 1875 = an epoch of MNIST at 32.
    for (const total of [1, 3, 10, 37, 1875]) {
      const steps = scheduledSteps({ kind, totalSteps: total }, BASE);
      assert.deepEqual(steps.length, total);
      const expected = steps.map((_, s) => closedForm(kind, total, s));
      // The cosine's recursive form drifts from the closed form by a few float64 ulp a step.
      const tolerance = { atol: 1e-18, rtol: 1e-12 };
      assertClose(steps.map((s) => s.lr), expected.map((e) => e.lr), tolerance, `${kind} lr`);
      assertClose(steps.map((s) => s.beta1), expected.map((e) => e.beta1), tolerance, "beta1");
    }
  }
  assert.deepEqual(scheduledSteps({ kind: "constant" }, BASE), [BASE]);
});

Deno.test("lr schedules refuse a kind we lack and a run of no steps", () => {
  assert.throws(
    () => scheduledSteps({ kind: "step" as "cosine", totalSteps: 5 }, BASE),
    /"step" is not one of constant, cosine, onecycle/,
  );
  assert.throws(
    () => scheduledSteps({ kind: "cosine", totalSteps: 0 }, BASE),
    /totalSteps = 0 must be a positive integer/,
  );
  assert.throws(() => scheduledSteps({ kind: "onecycle" }, BASE), /totalSteps = undefined/);
});

Deno.test("lr schedules match torch.optim.lr_scheduler step for step", async (t) => {
  const python = await findPython(["torch"]);
  if (!python) {
    console.log("  skipped: no python3 imports torch (apt-get install python3-torch)");
    return;
  }
  // PyTorch's own schedulers over AdamW, stepped once a batch: the lr and beta1 each optimizer
  // step uses. Printed with repr: Python's float64 digits, read back exactly.
  const code = `
import sys, json, torch
kind, total = sys.argv[1], int(sys.argv[2])
opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=${BASE.lr}, betas=(${BASE.beta1}, 0.999))
if kind == "cosine":
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
else:
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=${BASE.lr}, total_steps=total)
rows = []
for _ in range(total):
    g = opt.param_groups[0]
    rows.append([repr(g["lr"]), repr(g["betas"][0])])
    opt.step()
    sched.step()
print(json.dumps(rows))
`;
  for (const kind of ["cosine", "onecycle"] as const) {
    for (const total of [3, 37, 1875]) {
      await t.step(`${kind} over ${total} steps`, async () => {
        const { stdout, stderr, success } = await new Deno.Command(python, {
          args: ["-W", "ignore", "-c", code, kind, String(total)],
          stdout: "piped",
          stderr: "piped",
        }).output();
        if (!success) throw new Error(new TextDecoder().decode(stderr));
        const torch = (JSON.parse(new TextDecoder().decode(stdout)) as string[][])
          .map(([lr, beta1]) => ({ lr: Number(lr), beta1: Number(beta1) }));
        const ours = scheduledSteps({ kind, totalSteps: total }, BASE);
        // Same formulas in the same order of float64 operations: equal but for cos's last bit.
        const tolerance = { atol: 0, rtol: 1e-15 };
        assertClose(ours.map((s) => s.lr), torch.map((s) => s.lr), tolerance, "lr");
        assertClose(ours.map((s) => s.beta1), torch.map((s) => s.beta1), tolerance, "beta1");
        // What AdamW reads: PyTorch's Python floats rounded once to f32, bit for bit.
        const table = scheduleTable({ kind, totalSteps: total }, { ...BASE, weightDecay: 0 });
        assert.deepEqual(
          Array.from(table.filter((_, i) => i % 4 === 0)),
          Array.from(Float32Array.from(torch, (s) => s.lr)),
        );
      });
    }
  }
});

Deno.test(
  "adamw reads each step's lr and beta1 from the schedule table, then holds the last row",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const n = 68, total = 7, weightDecay = 0.05;
    for (const kind of ["constant", "cosine", "onecycle"] as const) {
      const schedule: LrSchedule = { kind, totalSteps: total };
      const rng = random(11);
      const p0 = Float32Array.from(randomArray(rng, n));
      const params = tensorFrom(rt, [n], p0, "params");
      const grads = tensor(rt, [n], { label: "grads" });
      const state = await createStepState(rt);
      // Start past step 0 so that the row comes from the counter, not from the op's count.
      const start = 2;
      state.set(rt, { step: start, batch: 0 });
      const adamw = await createAdamW(rt, {
        params,
        grads,
        state: state.tensor,
        n,
        lr: BASE.lr,
        betas: [BASE.beta1, 0.999],
        weightDecay,
        schedule,
      });
      const steps = scheduledSteps(schedule, BASE);
      let ref = { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
      // Two steps past the end: they use the last row.
      for (let s = start; s < total + 2; s++) {
        const g = Float32Array.from(randomArray(rng, n));
        upload(rt, grads, g);
        submit(rt, [adamw.op, state.advanceTrain]);
        const { lr, beta1 } = steps[Math.min(s, steps.length - 1)];
        ref = adamwReference({ ...ref, g }, {
          t: s + 1,
          lr,
          betas: [beta1, 0.999],
          eps: 1e-8,
          weightDecay,
        });
        const label = `${kind} step ${s}`;
        assertClose(await readback(rt, adamw.m), ref.m, { atol: 1e-7, rtol: 1e-6 }, `${label} m`);
        assertClose(await readback(rt, params), ref.p, { atol: 1e-7, rtol: 1e-6 }, `${label} p`);
      }
    }
  },
);
