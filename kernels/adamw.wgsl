// AdamW, as torch.optim.AdamW (single-tensor, foreach=False), over the whole flat parameter
// buffer in one dispatch; t = step + 1 comes from the step state, so the same op serves
// every step. The learning rate and beta1 of the step come from the schedule table (one row
// a step, computed in float64 on the CPU once for the run, see lib/lr_schedule.ts): row
// min(step, rows - 1), so a constant rate is a table of one row. For each element:
//   p = p * (1 - lr * weight_decay)                     (decoupled weight decay)
//   m = m + (1 - beta1) * (g - m)                       (= beta1 m + (1 - beta1) g, torch's lerp_)
//   v = beta2 * v + (1 - beta2) * g * g
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps
//   p = p - lr / (1 - beta1^t) * m / denom
// One invocation updates ELEMENTS vec4s of 4 consecutive elements, WORKGROUP vec4s apart (so
// that the step's scalars, two series of divisions, are computed once for them); n is a
// multiple of 4.
// index legend: i vec4 index (elements 4i..4i+3), t step number from 1
// bindings: 0 p [n] f32 (parameters), 1 g [n] f32 (gradients), 2 m [n] f32 (exp_avg),
//   3 v [n] f32 (exp_avg_sq), 4 state StepState, 5 hyper {n, rows, beta2, ...} (below),
//   6 schedule [rows] ScheduleRow

override WORKGROUP: u32 = 64;
override ELEMENTS: u32 = 4;

struct StepState {
  step: u32,
  batch: u32,
}

// Values derived from the hyperparameters are computed in float64 on the CPU, as PyTorch
// computes them in Python floats: in f32, 1 - 0.999 keeps only 4 correct digits.
struct Hyper {
  n: u32,
  // Rows of the schedule table.
  rows: u32,
  beta2: f32,
  one_minus_beta2: f32,
  // ln(beta2), for the bias correction 1 - beta2^t.
  log_beta2: f32,
  eps: f32,
}

// What the schedule sets for one step (PyTorch's param_group lr and betas[0]).
struct ScheduleRow {
  lr: f32,
  // 1 - lr * weight_decay.
  decay: f32,
  one_minus_beta1: f32,
  // ln(beta1), for the bias correction 1 - beta1^t.
  log_beta1: f32,
}

@group(0) @binding(0) var<storage, read_write> p: array<vec4f>;
@group(0) @binding(1) var<storage, read> g: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> m: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> v: array<vec4f>;
@group(0) @binding(4) var<storage, read> state: StepState;
@group(0) @binding(5) var<uniform> hyper: Hyper;
@group(0) @binding(6) var<storage, read> schedule: array<ScheduleRow>;

// 1 - beta^t = -expm1(t ln(beta)). Near t = 1 with beta2 = 0.999 it is ~1e-3, and
// 1.0 - pow(beta2, t) in f32 would lose the digits that cancel; the series of expm1 keeps them.
fn one_minus_pow(log_beta: f32, t: f32) -> f32 {
  let x = t * log_beta;
  if (x < -0.5) {
    return 1.0 - exp(x);
  }
  // expm1(x) = x (1 + x/2 (1 + x/3 (... (1 + x/9)))); the next term is < 1e-9 x for |x| <= 0.5.
  var s = 1.0;
  for (var k = 9u; k >= 2u; k--) {
    s = 1.0 + x / f32(k) * s;
  }
  return -x * s;
}

@compute @workgroup_size(WORKGROUP)
fn step(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let first = (wid.x + wid.y * groups.x) * WORKGROUP * ELEMENTS + lane;
  if (first >= hyper.n / 4u) {
    return;
  }
  let t = f32(state.step + 1u);
  let row = schedule[min(state.step, hyper.rows - 1u)];
  let step_size = row.lr / one_minus_pow(row.log_beta1, t);
  let bias_correction2_sqrt = sqrt(one_minus_pow(hyper.log_beta2, t));

  for (var j = 0u; j < ELEMENTS; j++) {
    let i = first + j * WORKGROUP;
    if (i >= hyper.n / 4u) {
      return;
    }
    // Each storage element is loaded once: on llvmpipe a storage load costs more than all the
    // arithmetic here.
    let grad = g[i];
    let exp_avg_old = m[i];
    let exp_avg = exp_avg_old + row.one_minus_beta1 * (grad - exp_avg_old);
    let exp_avg_sq = v[i] * hyper.beta2 + hyper.one_minus_beta2 * grad * grad;
    let denom = sqrt(exp_avg_sq) / bias_correction2_sqrt + hyper.eps;
    p[i] = p[i] * row.decay - step_size * (exp_avg / denom);
    m[i] = exp_avg;
    v[i] = exp_avg_sq;
  }
}
