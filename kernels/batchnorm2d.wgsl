// BatchNorm2d over x [N,C,H,W], the plain tier, with an optional fused ReLU (override RELU).
// M = N*H*W values per channel; y = relu?(x * scale + shift) with
//   scale = weight * invstd, shift = bias - mean * scale, invstd = 1 / sqrt(var + eps).
//
// statistics (training): one workgroup per channel c. Invocation l sums the channel's values
//   j = l, l + WORKGROUP, ... (j = n*PLANE + p), the workgroup adds the partial sums as a tree:
//   first the mean, then (a second pass) the sum of squared deviations, whose / M is the biased
//   variance used to normalize. It writes saved[c] = (mean, invstd, scale, shift) and updates
//   the running statistics with momentum and the unbiased variance M / (M - 1) * var, as
//   PyTorch does.
// normalize (training): one invocation per value: y = relu?(x * scale + shift), saved's.
// eval_forward: one invocation per value, with the running statistics for mean and var.
// backward_sums: one workgroup per channel c, as statistics. With g = dy (masked by the
//   pre-activation x * scale + shift > 0 when RELU) and xhat = (x - mean) * invstd:
//     dbias[c] = sum g,  dweight[c] = sum g * xhat.
// backward_input: one invocation per value (run only when there is a dx):
//     dx = scale / M * (M * g - dbias - xhat * dweight).
//
// Index legend: n image, c channel, p = h*W + w position in the plane, i = (n*C + c)*PLANE + p
// the flat index of a value, j = n*PLANE + p its place in the channel, l the invocation in
// its workgroup.
//
// Bindings (per entry point, numbered from 0 in the order listed):
//   statistics:     x [N,C,H,W], weight [C], bias [C], running_mean [C], running_var [C],
//                   saved [C,4] (written: mean, invstd, scale, shift), params
//   normalize:      x, saved [C,4], y [N,C,H,W], params
//   eval_forward:   x, weight, bias, running_mean, running_var, y, params
//   backward_sums:  x, dy [N,C,H,W], saved, dweight [C], dbias [C], params
//   backward_input: x, dy, saved, dweight, dbias, dx [N,C,H,W], params
// Per-value entry points index invocations over a 2-D grid of workgroups (runtime.ts grid());
// per-channel ones a workgroup per channel, over the same grid.

// Invocations per workgroup (a power of two: the tree sums halve it).
override WORKGROUP: u32 = 64;
override RELU: bool = false;

struct Params {
  batch: u32,
  channels: u32,
  plane: u32,
  eps: f32,
  momentum: f32,
}

// statistics. weight and bias are only read, but they are views of the same flat parameter
// buffer as the running statistics, which are written: WebGPU forbids one buffer as read-only
// and read-write storage in the same dispatch, so all four are read-write.
@group(0) @binding(0) var<storage, read> sx: array<f32>;
@group(0) @binding(1) var<storage, read_write> sweight: array<f32>;
@group(0) @binding(2) var<storage, read_write> sbias: array<f32>;
@group(0) @binding(3) var<storage, read_write> srunning_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> srunning_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> ssaved: array<vec4f>;
@group(0) @binding(6) var<uniform> sparams: Params;

var<workgroup> partial: array<f32, WORKGROUP>;
var<workgroup> partial2: array<f32, WORKGROUP>;

// The sum over the workgroup of each invocation's `v` (every invocation must call it).
fn workgroup_sum(l: u32, v: f32) -> f32 {
  partial[l] = v;
  workgroupBarrier();
  for (var half = WORKGROUP / 2u; half > 0u; half /= 2u) {
    if (l < half) {
      partial[l] += partial[l + half];
    }
    workgroupBarrier();
  }
  let sum = partial[0];
  // Nobody writes partial again before everyone has read the sum.
  workgroupBarrier();
  return sum;
}

// The two sums of each invocation's `a` and `b` over the workgroup, in one tree.
fn workgroup_sum2(l: u32, a: f32, b: f32) -> vec2f {
  partial[l] = a;
  partial2[l] = b;
  workgroupBarrier();
  for (var half = WORKGROUP / 2u; half > 0u; half /= 2u) {
    if (l < half) {
      partial[l] += partial[l + half];
      partial2[l] += partial2[l + half];
    }
    workgroupBarrier();
  }
  let sums = vec2f(partial[0], partial2[0]);
  workgroupBarrier();
  return sums;
}

// The flat index of value j of channel c.
fn flat(u: Params, c: u32, j: u32) -> u32 {
  return ((j / u.plane) * u.channels + c) * u.plane + j % u.plane;
}

@compute @workgroup_size(WORKGROUP)
fn statistics(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) l: u32,
) {
  let u = sparams;
  // A workgroup past the channels still reaches every barrier, and writes nothing.
  let c = wid.x + wid.y * groups.x;
  let live = c < u.channels;
  let count = u.batch * u.plane;
  var sum = 0.0;
  if (live) {
    for (var j = l; j < count; j += WORKGROUP) {
      sum += sx[flat(u, c, j)];
    }
  }
  let mean = workgroup_sum(l, sum) / f32(count);
  var squares = 0.0;
  if (live) {
    for (var j = l; j < count; j += WORKGROUP) {
      let d = sx[flat(u, c, j)] - mean;
      squares += d * d;
    }
  }
  let m2 = workgroup_sum(l, squares);
  if (l != 0u || !live) {
    return;
  }
  let variance = m2 / f32(count);
  let invstd = inverseSqrt(variance + u.eps);
  let scale = sweight[c] * invstd;
  ssaved[c] = vec4f(mean, invstd, scale, sbias[c] - mean * scale);
  let unbiased = m2 / f32(count - 1u);
  srunning_mean[c] = (1.0 - u.momentum) * srunning_mean[c] + u.momentum * mean;
  srunning_var[c] = (1.0 - u.momentum) * srunning_var[c] + u.momentum * unbiased;
}

@group(0) @binding(0) var<storage, read> nx: array<f32>;
@group(0) @binding(1) var<storage, read> nsaved: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> ny: array<f32>;
@group(0) @binding(3) var<uniform> nparams: Params;

fn activate(pre: f32) -> f32 {
  if (RELU) {
    return max(pre, 0.0);
  }
  return pre;
}

@compute @workgroup_size(WORKGROUP)
fn normalize(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = nparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i >= u.batch * u.channels * u.plane) {
    return;
  }
  let s = nsaved[(i / u.plane) % u.channels];
  ny[i] = activate(nx[i] * s.z + s.w);
}

@group(0) @binding(0) var<storage, read> ex: array<f32>;
@group(0) @binding(1) var<storage, read> eweight: array<f32>;
@group(0) @binding(2) var<storage, read> ebias: array<f32>;
@group(0) @binding(3) var<storage, read> erunning_mean: array<f32>;
@group(0) @binding(4) var<storage, read> erunning_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> ey: array<f32>;
@group(0) @binding(6) var<uniform> eparams: Params;

@compute @workgroup_size(WORKGROUP)
fn eval_forward(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = eparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i >= u.batch * u.channels * u.plane) {
    return;
  }
  let c = (i / u.plane) % u.channels;
  let scale = eweight[c] * inverseSqrt(erunning_var[c] + u.eps);
  ey[i] = activate(ex[i] * scale + ebias[c] - erunning_mean[c] * scale);
}

@group(0) @binding(0) var<storage, read> bx: array<f32>;
@group(0) @binding(1) var<storage, read> bdy: array<f32>;
@group(0) @binding(2) var<storage, read> bsaved: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> bdweight: array<f32>;
@group(0) @binding(4) var<storage, read_write> bdbias: array<f32>;
@group(0) @binding(5) var<uniform> bparams: Params;

// g for value i: dy, masked by the forward's own pre-activation when RELU (= the forward's
// y > 0, without reading y).
fn masked(x: f32, dy: f32, s: vec4f) -> f32 {
  if (RELU && !(x * s.z + s.w > 0.0)) {
    return 0.0;
  }
  return dy;
}

@compute @workgroup_size(WORKGROUP)
fn backward_sums(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) l: u32,
) {
  let u = bparams;
  let c = wid.x + wid.y * groups.x;
  let live = c < u.channels;
  let count = u.batch * u.plane;
  var g_sum = 0.0;
  var gx_sum = 0.0;
  if (live) {
    let s = bsaved[c];
    for (var j = l; j < count; j += WORKGROUP) {
      let i = flat(u, c, j);
      let g = masked(bx[i], bdy[i], s);
      g_sum += g;
      gx_sum += g * (bx[i] - s.x) * s.y;
    }
  }
  let sums = workgroup_sum2(l, g_sum, gx_sum);
  if (l == 0u && live) {
    bdbias[c] = sums.x;
    bdweight[c] = sums.y;
  }
}

@group(0) @binding(0) var<storage, read> ix: array<f32>;
@group(0) @binding(1) var<storage, read> idy: array<f32>;
@group(0) @binding(2) var<storage, read> isaved: array<vec4f>;
@group(0) @binding(3) var<storage, read> idweight: array<f32>;
@group(0) @binding(4) var<storage, read> idbias: array<f32>;
@group(0) @binding(5) var<storage, read_write> idx: array<f32>;
@group(0) @binding(6) var<uniform> iparams: Params;

@compute @workgroup_size(WORKGROUP)
fn backward_input(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = iparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i >= u.batch * u.channels * u.plane) {
    return;
  }
  let c = (i / u.plane) % u.channels;
  let s = isaved[c];
  let m = f32(u.batch * u.plane);
  let xhat = (ix[i] - s.x) * s.y;
  idx[i] = s.z / m * (m * masked(ix[i], idy[i], s) - idbias[c] - xhat * idweight[c]);
}
