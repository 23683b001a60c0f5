// BatchNorm2d over x [N,C,H,W], with an optional fused ReLU (override RELU).
//
// train_forward: one invocation per channel c walks the channel's N planes twice. First it
//   keeps Welford's running statistics (count, mean, sum of squared deviations: f32 without
//   the cancellation of E[x^2] - E[x]^2), then it writes
//     y = relu?(x * scale + shift),  scale = weight * invstd,  shift = bias - mean * scale,
//     invstd = 1 / sqrt(var + eps)  (var: the biased variance).
//   It saves (mean, invstd, scale, shift) for the backward and updates the running statistics
//   with the unbiased variance M / (M - 1) * var, as PyTorch does (M = N*H*W).
// eval_forward: the second walk alone, with the running statistics in place of the batch ones;
//   one invocation per (channel c, slice s of the batch), for more invocations.
// backward: one invocation per channel c; restates the training forward above. With g = dy
//   (masked by the pre-activation > 0 when RELU) and xhat = (x - mean) * invstd:
//     dbias = sum g,  dweight = sum g * xhat,
//     dx = weight * invstd / M * (M * g - dbias - xhat * dweight)
//   It walks the channel twice: the sums, then dx (when params.input_grad != 0; 0 when there
//   is no dx, BatchNorm being the first layer). The ReLU mask is recomputed from x with the
//   forward's own expression (pre_activation, the saved scale and shift), which saves reading
//   y: it agrees with the forward's y > 0.
//
// Why this shape, on llvmpipe (Mesa's CPU rasterizer: a workgroup runs on one thread, an
// invocation is one of its SIMD lanes): one invocation per channel needs no combine of
// partial statistics, so no second dispatch (a dispatch costs about as much as a pass over
// the seed's BN2) and no workgroup memory or barriers (slow on the GL backend). x and dy are
// read from their texture mirrors (lib/cpu/texture.ts textureMirror: texel i = floats 4i..4i+3),
// a whole texel per fetch, about a sixth of the cost of four storage loads; y and dx are
// stored a vec4 at a time. Planes are often odd (13*13, 5*5), so the first and last texel of
// a plane may hold floats of a neighbouring plane: those are read masked and written float by
// float (each float has one writer), the texels between them whole.
//
// Index legend: n image, c channel, p = h*W + w position in the plane, f = (n*C + c)*PLANE + p
// the flat index of a value, t = f / 4 its texel; s slice of the batch (images
// [s*SPAN, (s+1)*SPAN), SPAN = ceil(N / SLICES)).
//
// Bindings (per entry point, numbered from 0 in the order listed):
//   eval_forward:  x [N,C,H,W] (texture), weight [C], bias [C], running_mean [C],
//                  running_var [C], y [N,C,H,W] (as vec4s), params
//   train_forward: the same, then saved [C,4] (written: mean, invstd, scale, shift)
//   backward:      x (texture), dy [N,C,H,W] (texture), saved [C,4], dweight [C], dbias [C],
//                  dx [N,C,H,W] (as vec4s), params

override WORKGROUP: u32 = 8;
override RELU: bool = false;
override BATCH: u32 = 1;
override CHANNELS: u32 = 1;
override PLANE: u32 = 1;
// eval_forward: slices of the batch per channel.
override SLICES: u32 = 1;

// Texels per row of a texture mirror (set from lib/cpu/texture.ts TEXTURE_ROW).
override TEXTURE_ROW: u32;
const IOTA = vec4u(0u, 1u, 2u, 3u);
const ALL = vec4<bool>(true);

struct Params {
  eps: f32,
  momentum: f32,
  // backward: 1 to write dx, 0 when there is no dx.
  input_grad: u32,
}

@group(0) @binding(0) var x: texture_2d<f32>;

// train_forward and eval_forward. weight and bias are only read, but they are views of the
// same flat parameter buffer as the running statistics, which are written: WebGPU forbids one
// buffer as read-only and read-write storage in the same dispatch, so all four are read-write.
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(6) var<uniform> params: Params;
@group(0) @binding(7) var<storage, read_write> saved_out: array<vec4f>;

// backward
@group(0) @binding(1) var dy: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> saved: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<vec4f>;
@group(0) @binding(6) var<uniform> backward_params: Params;

fn texel(t: texture_2d<f32>, i: u32) -> vec4f {
  return textureLoad(t, vec2u(i % TEXTURE_ROW, i / TEXTURE_ROW), 0);
}

// Plane (n, c): floats [start, start + PLANE) in texels first..last; the floats of first and
// last (the same texel when the plane is that short) that belong to it.
struct Plane {
  first: u32,
  last: u32,
  first_mask: vec4<bool>,
  last_mask: vec4<bool>,
}

fn plane(n: u32, c: u32) -> Plane {
  let start = (n * CHANNELS + c) * PLANE;
  let end = start + PLANE;
  let first = start / 4u;
  let last = (end - 1u) / 4u;
  let f_first = vec4u(first * 4u) + IOTA;
  let f_last = vec4u(last * 4u) + IOTA;
  return Plane(
    first,
    last,
    (f_first >= vec4u(start)) & (f_first < vec4u(end)),
    (f_last >= vec4u(start)) & (f_last < vec4u(end)),
  );
}

// ---- statistics ----

// Welford's statistics of 4 sets of values side by side (float j of each texel goes to set j):
// count, mean and sum of squared deviations.
struct Welford4 {
  count: vec4f,
  mean: vec4f,
  m2: vec4f,
}

// Adds the floats of v that `take` says.
fn welford_add(w: ptr<function, Welford4>, v: vec4f, take: vec4<bool>) {
  let count = (*w).count + 1.0;
  let delta = v - (*w).mean;
  let mean = (*w).mean + delta / count;
  (*w).m2 = select((*w).m2, (*w).m2 + delta * (v - mean), take);
  (*w).mean = select((*w).mean, mean, take);
  (*w).count = select((*w).count, count, take);
}

// Combining two sets (Chan et al.): delta = mean_b - mean_a, n = n_a + n_b,
//   mean = mean_a + delta * n_b / n,  m2 = m2_a + m2_b + delta^2 * n_a * n_b / n
// (an empty b leaves a as it is; an empty a gives b).
fn welford_combine(a: Welford4, b: Welford4) -> Welford4 {
  let count = a.count + b.count;
  let delta = b.mean - a.mean;
  let share = select(b.count / count, vec4f(0.0), b.count == vec4f(0.0));
  return Welford4(count, a.mean + delta * share, a.m2 + b.m2 + delta * delta * a.count * share);
}

// Channel c's (count, mean, m2) over the batch. Each plane gets statistics of its own, then
// combined into the channel's: the rounding error of a running mean grows with the number of
// values it has taken, and a plane is a small part of the channel (169 of 5408 in the seed).
fn channel_stats(c: u32) -> vec3f {
  var total = Welford4(vec4f(0.0), vec4f(0.0), vec4f(0.0));
  for (var n = 0u; n < BATCH; n++) {
    let pl = plane(n, c);
    var w = Welford4(vec4f(0.0), vec4f(0.0), vec4f(0.0));
    welford_add(&w, texel(x, pl.first), pl.first_mask);
    for (var t = pl.first + 1u; t < pl.last; t++) {
      welford_add(&w, texel(x, t), ALL);
    }
    if (pl.last > pl.first) {
      welford_add(&w, texel(x, pl.last), pl.last_mask);
    }
    total = welford_combine(total, w);
  }
  // The four sets of floats 0, 1, 2, 3 of the texels, combined.
  let pair = welford_combine(
    Welford4(total.count.xyxy, total.mean.xyxy, total.m2.xyxy),
    Welford4(total.count.zwzw, total.mean.zwzw, total.m2.zwzw),
  );
  let all = welford_combine(
    Welford4(pair.count.xxxx, pair.mean.xxxx, pair.m2.xxxx),
    Welford4(pair.count.yyyy, pair.mean.yyyy, pair.m2.yyyy),
  );
  return vec3f(all.count.x, all.mean.x, all.m2.x);
}

// ---- normalization ----

// (mean, invstd, scale, shift) of channel c: xhat * weight + bias = x * scale + shift.
fn channel_affine(c: u32, mean: f32, invstd: f32) -> vec4f {
  let scale = weight[c] * invstd;
  return vec4f(mean, invstd, scale, bias[c] - mean * scale);
}

// The value before the ReLU, the same expression in the forward and the backward, so that
// the backward's mask agrees with the forward's y > 0.
fn pre_activation(v: vec4f, affine: vec4f) -> vec4f {
  return v * affine.z + affine.w;
}

fn normalized(v: vec4f, affine: vec4f) -> vec4f {
  let pre = pre_activation(v, affine);
  if (RELU) {
    return max(pre, vec4f(0.0));
  }
  return pre;
}

// Writes the floats of texel t that `take` says.
fn store_y(t: u32, v: vec4f, take: vec4<bool>) {
  if (take.x) {
    y[t].x = v.x;
  }
  if (take.y) {
    y[t].y = v.y;
  }
  if (take.z) {
    y[t].z = v.z;
  }
  if (take.w) {
    y[t].w = v.w;
  }
}

// y over the planes of channel c in images [n0, n1).
fn normalize(c: u32, n0: u32, n1: u32, affine: vec4f) {
  for (var n = n0; n < n1; n++) {
    let pl = plane(n, c);
    store_y(pl.first, normalized(texel(x, pl.first), affine), pl.first_mask);
    for (var t = pl.first + 1u; t < pl.last; t++) {
      y[t] = normalized(texel(x, t), affine);
    }
    if (pl.last > pl.first) {
      store_y(pl.last, normalized(texel(x, pl.last), affine), pl.last_mask);
    }
  }
}

// The flat index of an invocation in a grid of workgroups laid out by lib/runtime.ts grid().
fn flat_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP;
}

@compute @workgroup_size(WORKGROUP)
fn train_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let c = flat_index(gid, groups);
  if (c >= CHANNELS) {
    return;
  }
  let w = channel_stats(c);
  let mean = w.y;
  let affine = channel_affine(c, mean, 1.0 / sqrt(w.z / w.x + params.eps));
  saved_out[c] = affine;
  let unbiased = w.z / (w.x - 1.0);
  let keep = 1.0 - params.momentum;
  running_mean[c] = keep * running_mean[c] + params.momentum * mean;
  running_var[c] = keep * running_var[c] + params.momentum * unbiased;
  normalize(c, 0u, BATCH, affine);
}

@compute @workgroup_size(WORKGROUP)
fn eval_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i >= CHANNELS * SLICES) {
    return;
  }
  let c = i / SLICES;
  let span = (BATCH + SLICES - 1u) / SLICES;
  let n0 = (i % SLICES) * span;
  let invstd = 1.0 / sqrt(running_var[c] + params.eps);
  normalize(c, n0, min(n0 + span, BATCH), channel_affine(c, running_mean[c], invstd));
}

// ---- backward ----

// Adds g and g * xhat of the floats of texel t that `take` says to sums (4 floats apart).
fn add_sums(sums: ptr<function, mat2x4f>, t: u32, take: vec4<bool>, affine: vec4f) {
  let v = texel(x, t);
  var keep = take;
  if (RELU) {
    keep &= pre_activation(v, affine) > vec4f(0.0);
  }
  let g = select(vec4f(0.0), texel(dy, t), keep);
  (*sums)[0] += g;
  (*sums)[1] += select(vec4f(0.0), g * (v - affine.x) * affine.y, keep);
}

fn input_grad(t: u32, affine: vec4f, sums: vec2f) -> vec4f {
  let v = texel(x, t);
  var g = texel(dy, t);
  if (RELU) {
    g = select(vec4f(0.0), g, pre_activation(v, affine) > vec4f(0.0));
  }
  let m = f32(BATCH * PLANE);
  let xhat = (v - affine.x) * affine.y;
  return affine.z / m * (m * g - sums.x - xhat * sums.y);
}

fn store_dx(t: u32, v: vec4f, take: vec4<bool>) {
  if (take.x) {
    dx[t].x = v.x;
  }
  if (take.y) {
    dx[t].y = v.y;
  }
  if (take.z) {
    dx[t].z = v.z;
  }
  if (take.w) {
    dx[t].w = v.w;
  }
}

@compute @workgroup_size(WORKGROUP)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let c = flat_index(gid, groups);
  if (c >= CHANNELS) {
    return;
  }
  let affine = saved[c];
  // Sums per plane (rows: g, g * xhat; 4 floats apart), added to the channel's plane by plane.
  var total = mat2x4f(vec4f(0.0), vec4f(0.0));
  for (var n = 0u; n < BATCH; n++) {
    let pl = plane(n, c);
    var sums = mat2x4f(vec4f(0.0), vec4f(0.0));
    add_sums(&sums, pl.first, pl.first_mask, affine);
    for (var t = pl.first + 1u; t < pl.last; t++) {
      add_sums(&sums, t, ALL, affine);
    }
    if (pl.last > pl.first) {
      add_sums(&sums, pl.last, pl.last_mask, affine);
    }
    total += sums;
  }
  let sums = vec2f(
    (total[0].x + total[0].y) + (total[0].z + total[0].w),
    (total[1].x + total[1].y) + (total[1].z + total[1].w),
  );
  dbias[c] = sums.x;
  dweight[c] = sums.y;
  if (backward_params.input_grad == 0u) {
    return;
  }
  for (var n = 0u; n < BATCH; n++) {
    let pl = plane(n, c);
    store_dx(pl.first, input_grad(pl.first, affine, sums), pl.first_mask);
    for (var t = pl.first + 1u; t < pl.last; t++) {
      dx[t] = input_grad(t, affine, sums);
    }
    if (pl.last > pl.first) {
      store_dx(pl.last, input_grad(pl.last, affine, sums), pl.last_mask);
    }
  }
}
