// BatchNorm2d over x [N,C,H,W], with an optional fused ReLU (override RELU).
//
// train_forward: one workgroup per channel c. Its WORKGROUP invocations walk the channel's
//   M = N*H*W values three times: the sum (mean), the sum of squared deviations (the biased
//   variance: two passes in f32, no E[x^2]-E[x]^2 cancellation), then the output. The two
//   sums are reduced through workgroup memory in a fixed tree, so results are bit-identical
//   run to run. Invocation 0 saves mean and invstd for the backward and updates the running
//   statistics with the unbiased variance, as PyTorch does.
//     y = relu?((x - mean) * invstd * weight + bias),  invstd = 1 / sqrt(var + eps)
// eval_forward: one invocation per element, running statistics in place of the batch ones.
// backward: one workgroup per channel c; restates the train forward above. With g = dy
//   (masked by y > 0 when RELU) and xhat = (x - mean) * invstd:
//     dbias = sum g,  dweight = sum g * xhat,
//     dx = weight * invstd / M * (M * g - dbias - xhat * dweight)
//
// Index legend: n image, c channel, p = h*W + w position in the plane, k = n*H*W + p the
// position of a value among the M values of its channel, t invocation in the workgroup.
//
// train_forward bindings: 0 x [N,C,H,W], 1 y [N,C,H,W], 2 weight [C], 3 bias [C],
//   4 running_mean [C] (read-write), 5 running_var [C] (read-write), 6 stats [2,C]
//   (written: mean, then invstd), 7 params.
// eval_forward bindings: 0 x, 1 y, 2 weight, 3 bias, 4 running_mean, 5 running_var, 6 params.
// backward bindings: 0 x, 1 y (read only when RELU), 2 dy [N,C,H,W], 3 weight [C],
//   4 stats [2,C], 5 dweight [C], 6 dbias [C], 7 dx [N,C,H,W] (written when
//   params.input_grad != 0), 8 params.

override WORKGROUP: u32 = 64;
override RELU: bool = false;

struct Params {
  batch: u32,
  channels: u32,
  plane: u32,
  // N*C*H*W, for eval_forward's bounds check.
  count: u32,
  // backward: 1 to write dx, 0 when there is no dx (BatchNorm as the first layer).
  input_grad: u32,
  eps: f32,
  momentum: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;

// train_forward and eval_forward
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
// weight and bias are only read, but they are views of the same flat parameter buffer as the
// running statistics, which are written: WebGPU forbids one buffer as read-only and read-write
// storage in the same dispatch, so all four are bound read-write.
@group(0) @binding(2) var<storage, read_write> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;
@group(0) @binding(6) var<uniform> eval_params: Params;

// backward (its own binding numbers; an entry point sees only the bindings it uses)
@group(0) @binding(1) var<storage, read> y_saved: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> weight_b: array<f32>;
@group(0) @binding(4) var<storage, read> stats_saved: array<f32>;
@group(0) @binding(5) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<uniform> backward_params: Params;

var<workgroup> partial: array<vec2f, WORKGROUP>;

// Sums `value` over the workgroup (a fixed tree: deterministic). Call from uniform control flow.
fn workgroup_sum(t: u32, value: vec2f) -> vec2f {
  partial[t] = value;
  workgroupBarrier();
  for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      partial[t] += partial[t + s];
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

// Walks the values of channel c: invocation t visits k = t, t + WORKGROUP, ... < M, keeping
// (n, p) of k up to date without a division per step.
struct Cursor {
  n: u32,
  p: u32,
  // Added to (n, p) each step: WORKGROUP = dn * plane + dp.
  dn: u32,
  dp: u32,
}

fn cursor_start(t: u32, plane: u32) -> Cursor {
  return Cursor(t / plane, t % plane, WORKGROUP / plane, WORKGROUP % plane);
}

fn cursor_step(cur: ptr<function, Cursor>, plane: u32) {
  (*cur).p += (*cur).dp;
  (*cur).n += (*cur).dn;
  if ((*cur).p >= plane) {
    (*cur).p -= plane;
    (*cur).n += 1u;
  }
}

@compute @workgroup_size(WORKGROUP)
fn train_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let c = wid.x;
  let batch = params.batch;
  let channels = params.channels;
  let plane = params.plane;
  let m = f32(batch * plane);

  var sum = 0.0;
  var cur = cursor_start(t, plane);
  while (cur.n < batch) {
    sum += x[(cur.n * channels + c) * plane + cur.p];
    cursor_step(&cur, plane);
  }
  let mean = workgroup_sum(t, vec2f(sum, 0.0)).x / m;

  var squares = 0.0;
  cur = cursor_start(t, plane);
  while (cur.n < batch) {
    let d = x[(cur.n * channels + c) * plane + cur.p] - mean;
    squares += d * d;
    cursor_step(&cur, plane);
  }
  let variance = workgroup_sum(t, vec2f(squares, 0.0)).x / m;
  let invstd = 1.0 / sqrt(variance + params.eps);

  if (t == 0u) {
    stats[c] = mean;
    stats[channels + c] = invstd;
    let unbiased = variance * m / (m - 1.0);
    let keep = 1.0 - params.momentum;
    running_mean[c] = keep * running_mean[c] + params.momentum * mean;
    running_var[c] = keep * running_var[c] + params.momentum * unbiased;
  }

  let scale = weight[c] * invstd;
  let shift = bias[c] - mean * scale;
  cur = cursor_start(t, plane);
  while (cur.n < batch) {
    let i = (cur.n * channels + c) * plane + cur.p;
    var v = x[i] * scale + shift;
    if (RELU) {
      v = max(v, 0.0);
    }
    y[i] = v;
    cursor_step(&cur, plane);
  }
}

@compute @workgroup_size(WORKGROUP)
fn eval_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i >= eval_params.count) {
    return;
  }
  let c = (i / eval_params.plane) % eval_params.channels;
  let scale = weight[c] / sqrt(running_var[c] + eval_params.eps);
  var v = (x[i] - running_mean[c]) * scale + bias[c];
  if (RELU) {
    v = max(v, 0.0);
  }
  y[i] = v;
}

@compute @workgroup_size(WORKGROUP)
fn backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let c = wid.x;
  let batch = backward_params.batch;
  let channels = backward_params.channels;
  let plane = backward_params.plane;
  let m = f32(batch * plane);
  let mean = stats_saved[c];
  let invstd = stats_saved[channels + c];

  // sums.x = sum g, sums.y = sum g * xhat
  var sums = vec2f(0.0);
  var cur = cursor_start(t, plane);
  while (cur.n < batch) {
    let i = (cur.n * channels + c) * plane + cur.p;
    var g = dy[i];
    if (RELU) {
      g = select(0.0, g, y_saved[i] > 0.0);
    }
    sums += vec2f(g, g * (x[i] - mean) * invstd);
    cursor_step(&cur, plane);
  }
  let total = workgroup_sum(t, sums);
  let dbeta = total.x;
  let dgamma = total.y;
  if (t == 0u) {
    dbias[c] = dbeta;
    dweight[c] = dgamma;
  }
  if (backward_params.input_grad == 0u) {
    return;
  }

  let k = weight_b[c] * invstd / m;
  cur = cursor_start(t, plane);
  while (cur.n < batch) {
    let i = (cur.n * channels + c) * plane + cur.p;
    var g = dy[i];
    if (RELU) {
      g = select(0.0, g, y_saved[i] > 0.0);
    }
    let xhat = (x[i] - mean) * invstd;
    dx[i] = k * (m * g - dbeta - xhat * dgamma);
    cursor_step(&cur, plane);
  }
}
