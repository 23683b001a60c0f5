// BatchNorm2d over x [N,C,H,W], with an optional fused ReLU (override RELU).
//
// train_forward: one workgroup per channel c. Its WORKGROUP invocations walk the channel's
//   M = N*H*W values twice: first each keeps Welford's running mean and sum of squared
//   deviations (in f32, without the cancellation of E[x^2] - E[x]^2), combined through
//   workgroup memory in a fixed tree, so results are bit-identical run to run; then each
//   writes its outputs. Invocation 0 saves mean and invstd for the backward and updates the
//   running statistics with the unbiased variance, as PyTorch does. (Two plain passes for
//   mean and variance cost a third walk: 3.7 ms against 2.7 ms for the seed's BN1 on llvmpipe.)
//     y = relu?((x - mean) * invstd * weight + bias),  invstd = 1 / sqrt(var + eps)
// eval_forward: elementwise with the running statistics in place of the batch ones;
//   one invocation handles CHUNK consecutive values.
// backward: one workgroup per channel c; restates the train forward above. With g = dy
//   (masked by y > 0 when RELU) and xhat = (x - mean) * invstd:
//     dbias = sum g,  dweight = sum g * xhat,
//     dx = weight * invstd / M * (M * g - dbias - xhat * dweight)
//   It walks the channel twice (the sums, then dx). The ReLU mask y > 0 is recomputed from x
//   with the forward's own expression (pre_activation below, same saved statistics, same
//   parameters), which saves reading y in both walks: 5 memory accesses per value, not 7.
//
// Index legend: n image, c channel, p = h*W + w position in the plane, k = n*H*W + p the
// position of a value among the M values of its channel, t invocation in the workgroup.
//
// train_forward bindings: 0 x [N,C,H,W], 1 y [N,C,H,W], 2 weight [C], 3 bias [C],
//   4 running_mean [C] (read-write), 5 running_var [C] (read-write), 6 stats [2,C]
//   (written: mean, then invstd), 7 params.
// eval_forward bindings: 0 x, 1 y, 2 weight, 3 bias, 4 running_mean, 5 running_var, 6 params.
// backward bindings: 0 x, 1 dy [N,C,H,W], 2 weight [C], 3 bias [C], 4 stats [2,C] (read),
//   5 dweight [C], 6 dbias [C], 7 dx [N,C,H,W] (written when params.input_grad != 0),
//   8 params.

// A power of two: the reductions halve it.
override WORKGROUP: u32 = 64;
override RELU: bool = false;
// eval_forward: consecutive values per invocation.
override CHUNK: u32 = 8;

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

// backward: x, weight and bias as above; the rest have their own binding numbers (an entry
// point's layout holds only the bindings it uses).
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> stats_saved: array<f32>;
@group(0) @binding(5) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<uniform> backward_params: Params;

var<workgroup> partial: array<vec3f, WORKGROUP>;

// Sums `value` over the workgroup (a fixed tree: deterministic). Call from uniform control flow.
fn workgroup_sum(t: u32, value: vec2f) -> vec2f {
  partial[t] = vec3f(value, 0.0);
  workgroupBarrier();
  for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      partial[t] += partial[t + s];
    }
    workgroupBarrier();
  }
  let total = partial[0].xy;
  workgroupBarrier();
  return total;
}

// Welford's running statistics of a set of values: (count, mean, sum of squared deviations).
// Combining two sets (Chan et al.): delta = mean_b - mean_a, n = n_a + n_b,
//   mean = mean_a + delta * n_b / n,  m2 = m2_a + m2_b + delta^2 * n_a * n_b / n.
fn welford_combine(a: vec3f, b: vec3f) -> vec3f {
  let n = a.x + b.x;
  if (n == 0.0) {
    return vec3f(0.0);
  }
  let delta = b.y - a.y;
  let share = b.x / n;
  return vec3f(n, a.y + delta * share, a.z + b.z + delta * delta * a.x * share);
}

// Combines every invocation's statistics in a fixed tree (deterministic). Uniform control flow.
fn workgroup_welford(t: u32, value: vec3f) -> vec3f {
  partial[t] = value;
  workgroupBarrier();
  for (var s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      partial[t] = welford_combine(partial[t], partial[t + s]);
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

// (scale, shift) of channel c: xhat * weight + bias = x * scale + shift.
fn channel_affine(c: u32, mean: f32, invstd: f32) -> vec2f {
  let scale = weight[c] * invstd;
  return vec2f(scale, bias[c] - mean * scale);
}

// The value before the ReLU, computed the same way by train_forward and backward, so that
// the backward's mask agrees with the forward's y > 0 (a compiler that fused the two
// differently could only flip values within an ulp of the kink, where y is 0 either way).
fn pre_activation(v: f32, affine: vec2f) -> f32 {
  return v * affine.x + affine.y;
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

  // One pass of Welford's update per invocation, then the tree of combines.
  var w = vec3f(0.0);
  var cur = cursor_start(t, plane);
  while (cur.n < batch) {
    let v = x[(cur.n * channels + c) * plane + cur.p];
    w.x += 1.0;
    let delta = v - w.y;
    w.y += delta / w.x;
    w.z += delta * (v - w.y);
    cursor_step(&cur, plane);
  }
  let total = workgroup_welford(t, w);
  let m = total.x;
  let mean = total.y;
  let variance = total.z / m;
  let invstd = 1.0 / sqrt(variance + params.eps);

  if (t == 0u) {
    stats[c] = mean;
    stats[channels + c] = invstd;
    let unbiased = total.z / (m - 1.0);
    let keep = 1.0 - params.momentum;
    running_mean[c] = keep * running_mean[c] + params.momentum * mean;
    running_var[c] = keep * running_var[c] + params.momentum * unbiased;
  }

  let affine = channel_affine(c, mean, invstd);
  cur = cursor_start(t, plane);
  while (cur.n < batch) {
    let i = (cur.n * channels + c) * plane + cur.p;
    var v = pre_activation(x[i], affine);
    if (RELU) {
      v = max(v, 0.0);
    }
    y[i] = v;
    cursor_step(&cur, plane);
  }
}

// One invocation per CHUNK consecutive values: one division finds the channel of the first,
// the rest follow it, and the channel's four parameters are loaded only when it changes
// (loaded per value, they were 4 of 6 memory accesses: twice the time on llvmpipe).
@compute @workgroup_size(WORKGROUP)
fn eval_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let first = (gid.x + gid.y * groups.x * WORKGROUP) * CHUNK;
  let count = eval_params.count;
  if (first >= count) {
    return;
  }
  let plane = eval_params.plane;
  let channels = eval_params.channels;
  let row = first / plane;
  var p = first - row * plane;
  var c = row % channels;
  var scale = weight[c] / sqrt(running_var[c] + eval_params.eps);
  var shift = bias[c] - running_mean[c] * scale;
  let end = min(first + CHUNK, count);
  for (var i = first; i < end; i++) {
    if (p == plane) {
      p = 0u;
      c = select(c + 1u, 0u, c + 1u == channels);
      scale = weight[c] / sqrt(running_var[c] + eval_params.eps);
      shift = bias[c] - running_mean[c] * scale;
    }
    var v = x[i] * scale + shift;
    if (RELU) {
      v = max(v, 0.0);
    }
    y[i] = v;
    p += 1u;
  }
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
  let affine = channel_affine(c, mean, invstd);

  // sums.x = sum g, sums.y = sum g * xhat
  var sums = vec2f(0.0);
  var cur = cursor_start(t, plane);
  while (cur.n < batch) {
    let i = (cur.n * channels + c) * plane + cur.p;
    let v = x[i];
    var g = dy[i];
    if (RELU) {
      g = select(0.0, g, pre_activation(v, affine) > 0.0);
    }
    sums += vec2f(g, g * (v - mean) * invstd);
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

  let k = affine.x / m;
  cur = cursor_start(t, plane);
  while (cur.n < batch) {
    let i = (cur.n * channels + c) * plane + cur.p;
    let v = x[i];
    var g = dy[i];
    if (RELU) {
      g = select(0.0, g, pre_activation(v, affine) > 0.0);
    }
    let xhat = (v - mean) * invstd;
    dx[i] = k * (m * g - dbeta - xhat * dgamma);
    cursor_step(&cur, plane);
  }
}
