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
// Handoffs (lib/cpu/handoff.ts): next to the wing's Conv2d, x and dx (PACKED_IN: a conv
// before) or y and dy (PACKED_OUT: a conv after) are textures packed in groups of four
// images (kernels/cpu/conv2d.wgsl's N4 layout: texel (g, c, p) = position p of channel c of
// images 4g..4g+3). Then the walks go over a channel's texels (g, c, p), four images a texel
// (each image's plane its own statistics, as above), with the lanes of images past N
// masked, and a plain tensor is read or written four single floats at a time. A packed dx
// holds 0 for the images past N; y is written plain as well where Y_PLAIN says (in eval).
//
// POOL: the adaptive average pool to 1x1 after it, fused (lib/cpu/adaptive_avg_pool2d.ts): the
// packed walk also sums each plane of y, as kernels/adaptive_avg_pool2d.wgsl does (even and odd
// positions apart, then (even + odd) / PLANE), into the pool's output pooled [N,C], and the
// backward reads the pool's gradient dpooled [N,C] where it read dy: dy = dpooled / PLANE.
//
// Bindings (per entry point, numbered from 0 in the order listed):
//   eval_forward:  x [N,C,H,W] (texture), weight [C], bias [C], running_mean [C],
//                  running_var [C], y [N,C,H,W] (as vec4s), params, y4 (storage texture),
//                  pooled [N,C]
//   train_forward: the same, then saved [C,4] (written: mean, invstd, scale, shift)
//   backward:      x (texture), dy [N,C,H,W] (texture), saved [C,4], dweight [C], dbias [C],
//                  dx [N,C,H,W] (as vec4s), params, dx4 (storage texture), dpooled [N,C]

override WORKGROUP: u32 = 8;
override RELU: bool = false;
override BATCH: u32 = 1;
override CHANNELS: u32 = 1;
override PLANE: u32 = 1;
// eval_forward: slices of the batch per channel (of its groups of four with a handoff).
override SLICES: u32 = 1;
// Handoffs: x and dx packed; y and dy packed; y written plain too.
override PACKED_IN: bool = false;
override PACKED_OUT: bool = false;
override Y_PLAIN: bool = true;
// The adaptive average pool after, fused.
override POOL: bool = false;
// Groups of four images.
override GROUPS: u32 = (BATCH + 3u) / 4u;

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
@group(0) @binding(7) var y4: texture_storage_2d<rgba32float, write>;
@group(0) @binding(8) var<storage, read_write> pooled: array<f32>;
@group(0) @binding(9) var<storage, read_write> saved_out: array<vec4f>;

// backward
@group(0) @binding(1) var dy: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> saved: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<vec4f>;
@group(0) @binding(6) var<uniform> backward_params: Params;
@group(0) @binding(7) var dx4: texture_storage_2d<rgba32float, write>;
@group(0) @binding(8) var<storage, read> dpooled: array<f32>;

fn texel_at(i: u32) -> vec2u {
  return vec2u(i % TEXTURE_ROW, i / TEXTURE_ROW);
}

fn texel(t: texture_2d<f32>, i: u32) -> vec4f {
  return textureLoad(t, texel_at(i), 0);
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
  return lanes_combined(total);
}

// The four sets of floats 0, 1, 2, 3 of the texels, combined: (count, mean, m2).
fn lanes_combined(total: Welford4) -> vec3f {
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

// ---- the packed walk (handoffs) ----

// The images of group g that exist.
fn live_images(g: u32) -> vec4<bool> {
  return vec4u(g * 4u) + IOTA < vec4u(BATCH);
}

// Texel (g, c, p) of a packed tensor.
fn packed_index(g: u32, c: u32, p: u32) -> u32 {
  return (g * CHANNELS + c) * PLANE + p;
}

// Float f of a plain tensor, from its mirror.
fn plain_float(t: texture_2d<f32>, f: u32) -> f32 {
  return texel(t, f / 4u)[f % 4u];
}

// Position p of channel c of images 4g..4g+3 of a plain tensor (image N-1 past N).
fn plain_quad(t: texture_2d<f32>, g: u32, c: u32, p: u32) -> vec4f {
  let f = (min(vec4u(g * 4u) + IOTA, vec4u(BATCH - 1u)) * CHANNELS + c) * PLANE + p;
  return vec4f(plain_float(t, f.x), plain_float(t, f.y), plain_float(t, f.z), plain_float(t, f.w));
}

fn x_quad(g: u32, c: u32, p: u32) -> vec4f {
  if (PACKED_IN) {
    return texel(x, packed_index(g, c, p));
  }
  return plain_quad(x, g, c, p);
}

// The walk goes over the packed layout.
fn packed_walk() -> bool {
  return PACKED_IN || PACKED_OUT || POOL;
}

// dy of images 4g..4g+3 at (c, p); with POOL, `pool_dy` (the same at every p).
fn dy_quad(g: u32, c: u32, p: u32, pool_dy: vec4f) -> vec4f {
  if (POOL) {
    return pool_dy;
  }
  if (PACKED_OUT) {
    return texel(dy, packed_index(g, c, p));
  }
  return plain_quad(dy, g, c, p);
}

// With POOL: dy of images 4g..4g+3 in channel c, dpooled / PLANE (image N-1 past N).
fn pool_dy(g: u32, c: u32) -> vec4f {
  if (!POOL) {
    return vec4f();
  }
  let f = min(vec4u(g * 4u) + IOTA, vec4u(BATCH - 1u)) * CHANNELS + c;
  let area = f32(PLANE);
  return vec4f(dpooled[f.x] / area, dpooled[f.y] / area, dpooled[f.z] / area, dpooled[f.w] / area);
}

// With POOL: the pooled values of images 4g..4g+3 in channel c, those that exist.
fn store_pooled(g: u32, c: u32, v: vec4f) {
  let live = live_images(g);
  let f = (vec4u(g * 4u) + IOTA) * CHANNELS + c;
  pooled[f.x] = v.x;
  if (live.y) {
    pooled[f.y] = v.y;
  }
  if (live.z) {
    pooled[f.z] = v.z;
  }
  if (live.w) {
    pooled[f.w] = v.w;
  }
}

// The flat indices of position p of channel c in images 4g..4g+3 of a plain tensor.
fn plain_indices(g: u32, c: u32, p: u32) -> vec4u {
  return ((vec4u(g * 4u) + IOTA) * CHANNELS + c) * PLANE + p;
}

// Float f of the plain y (or dx) written alone, its lane named: the texel's other floats may
// belong to another channel, another invocation's (a store through a variable lane index may
// be a read-modify-write of the whole texel).
fn store_y_float(f: u32, v: f32) {
  switch (f % 4u) {
    case 0u: {
      y[f / 4u].x = v;
    }
    case 1u: {
      y[f / 4u].y = v;
    }
    case 2u: {
      y[f / 4u].z = v;
    }
    default: {
      y[f / 4u].w = v;
    }
  }
}

fn store_dx_float(f: u32, v: f32) {
  switch (f % 4u) {
    case 0u: {
      dx[f / 4u].x = v;
    }
    case 1u: {
      dx[f / 4u].y = v;
    }
    case 2u: {
      dx[f / 4u].z = v;
    }
    default: {
      dx[f / 4u].w = v;
    }
  }
}

// Writes v (images 4g..4g+3 at (c, p)): packed (the lanes past N as they are), and plain
// where Y_PLAIN says.
fn store_y_quad(g: u32, c: u32, p: u32, v: vec4f) {
  let live = live_images(g);
  if (PACKED_OUT) {
    textureStore(y4, texel_at(packed_index(g, c, p)), v);
  }
  if (!Y_PLAIN) {
    return;
  }
  let f = plain_indices(g, c, p);
  store_y_float(f.x, v.x);
  if (live.y) {
    store_y_float(f.y, v.y);
  }
  if (live.z) {
    store_y_float(f.z, v.z);
  }
  if (live.w) {
    store_y_float(f.w, v.w);
  }
}

// Writes v (dx of images 4g..4g+3 at (c, p)): packed for a conv before, 0 past N (the conv's
// weight and bias gradients sum over the four lanes), else plain.
fn store_dx_quad(g: u32, c: u32, p: u32, v: vec4f) {
  let live = live_images(g);
  if (PACKED_IN) {
    textureStore(dx4, texel_at(packed_index(g, c, p)), select(vec4f(), v, live));
    return;
  }
  let f = plain_indices(g, c, p);
  store_dx_float(f.x, v.x);
  if (live.y) {
    store_dx_float(f.y, v.y);
  }
  if (live.z) {
    store_dx_float(f.z, v.z);
  }
  if (live.w) {
    store_dx_float(f.w, v.w);
  }
}

// channel_stats over the packed walk: lane j of group g is image 4g+j's plane.
fn channel_stats_packed(c: u32) -> vec3f {
  var total = Welford4(vec4f(0.0), vec4f(0.0), vec4f(0.0));
  for (var g = 0u; g < GROUPS; g++) {
    let live = live_images(g);
    var w = Welford4(vec4f(0.0), vec4f(0.0), vec4f(0.0));
    for (var p = 0u; p < PLANE; p++) {
      welford_add(&w, x_quad(g, c, p), live);
    }
    total = welford_combine(total, w);
  }
  return lanes_combined(total);
}

// normalize over the packed walk, groups [g0, g1), and with POOL the pool of each plane.
fn normalize_packed(c: u32, g0: u32, g1: u32, affine: vec4f) {
  for (var g = g0; g < g1; g++) {
    var even = vec4f(0.0);
    var odd = vec4f(0.0);
    for (var p = 0u; p < PLANE; p++) {
      let v = normalized(x_quad(g, c, p), affine);
      store_y_quad(g, c, p, v);
      if (POOL) {
        if (p % 2u == 0u) {
          even += v;
        } else {
          odd += v;
        }
      }
    }
    if (POOL) {
      store_pooled(g, c, (even + odd) / f32(PLANE));
    }
  }
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
  var w: vec3f;
  if (packed_walk()) {
    w = channel_stats_packed(c);
  } else {
    w = channel_stats(c);
  }
  let mean = w.y;
  let affine = channel_affine(c, mean, 1.0 / sqrt(w.z / w.x + params.eps));
  saved_out[c] = affine;
  let unbiased = w.z / (w.x - 1.0);
  let keep = 1.0 - params.momentum;
  running_mean[c] = keep * running_mean[c] + params.momentum * mean;
  running_var[c] = keep * running_var[c] + params.momentum * unbiased;
  if (packed_walk()) {
    normalize_packed(c, 0u, GROUPS, affine);
  } else {
    normalize(c, 0u, BATCH, affine);
  }
}

@compute @workgroup_size(WORKGROUP)
fn eval_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i >= CHANNELS * SLICES) {
    return;
  }
  let c = i / SLICES;
  let invstd = 1.0 / sqrt(running_var[c] + params.eps);
  let affine = channel_affine(c, running_mean[c], invstd);
  if (packed_walk()) {
    let span = (GROUPS + SLICES - 1u) / SLICES;
    let g0 = (i % SLICES) * span;
    normalize_packed(c, g0, min(g0 + span, GROUPS), affine);
    return;
  }
  let span = (BATCH + SLICES - 1u) / SLICES;
  let n0 = (i % SLICES) * span;
  normalize(c, n0, min(n0 + span, BATCH), affine);
}

// ---- backward ----

// Adds g and g * xhat of the floats of x (v) and dy (d) that `take` says to sums (4 floats
// apart).
fn add_sums(sums: ptr<function, mat2x4f>, v: vec4f, d: vec4f, take: vec4<bool>, affine: vec4f) {
  var keep = take;
  if (RELU) {
    keep &= pre_activation(v, affine) > vec4f(0.0);
  }
  let g = select(vec4f(0.0), d, keep);
  (*sums)[0] += g;
  (*sums)[1] += select(vec4f(0.0), g * (v - affine.x) * affine.y, keep);
}

// dx of the floats of x (v) and dy (d).
fn input_grad(v: vec4f, d: vec4f, affine: vec4f, sums: vec2f) -> vec4f {
  var g = d;
  if (RELU) {
    g = select(vec4f(0.0), g, pre_activation(v, affine) > vec4f(0.0));
  }
  let m = f32(BATCH * PLANE);
  let xhat = (v - affine.x) * affine.y;
  return affine.z / m * (m * g - sums.x - xhat * sums.y);
}

// dx of texel t of the plain x and dy.
fn dx_at(t: u32, affine: vec4f, sums: vec2f) -> vec4f {
  return input_grad(texel(x, t), texel(dy, t), affine, sums);
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

// Channel c's sums (rows: g, g * xhat; 4 floats apart), added plane by plane.
fn plain_sums(c: u32, affine: vec4f) -> mat2x4f {
  var total = mat2x4f(vec4f(0.0), vec4f(0.0));
  for (var n = 0u; n < BATCH; n++) {
    let pl = plane(n, c);
    var sums = mat2x4f(vec4f(0.0), vec4f(0.0));
    add_sums(&sums, texel(x, pl.first), texel(dy, pl.first), pl.first_mask, affine);
    for (var t = pl.first + 1u; t < pl.last; t++) {
      add_sums(&sums, texel(x, t), texel(dy, t), ALL, affine);
    }
    if (pl.last > pl.first) {
      add_sums(&sums, texel(x, pl.last), texel(dy, pl.last), pl.last_mask, affine);
    }
    total += sums;
  }
  return total;
}

// plain_sums over the packed walk (lane j of group g: image 4g+j's plane).
fn packed_sums(c: u32, affine: vec4f) -> mat2x4f {
  var total = mat2x4f(vec4f(0.0), vec4f(0.0));
  for (var g = 0u; g < GROUPS; g++) {
    let live = live_images(g);
    var sums = mat2x4f(vec4f(0.0), vec4f(0.0));
    let pdy = pool_dy(g, c);
    for (var p = 0u; p < PLANE; p++) {
      add_sums(&sums, x_quad(g, c, p), dy_quad(g, c, p, pdy), live, affine);
    }
    total += sums;
  }
  return total;
}

@compute @workgroup_size(WORKGROUP)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let c = flat_index(gid, groups);
  if (c >= CHANNELS) {
    return;
  }
  let affine = saved[c];
  let packed = packed_walk();
  var total: mat2x4f;
  if (packed) {
    total = packed_sums(c, affine);
  } else {
    total = plain_sums(c, affine);
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
  if (packed) {
    for (var g = 0u; g < GROUPS; g++) {
      let pdy = pool_dy(g, c);
      for (var p = 0u; p < PLANE; p++) {
        store_dx_quad(g, c, p, input_grad(x_quad(g, c, p), dy_quad(g, c, p, pdy), affine, sums));
      }
    }
    return;
  }
  for (var n = 0u; n < BATCH; n++) {
    let pl = plane(n, c);
    store_dx(pl.first, dx_at(pl.first, affine, sums), pl.first_mask);
    for (var t = pl.first + 1u; t < pl.last; t++) {
      dx[t] = dx_at(t, affine, sums);
    }
    if (pl.last > pl.first) {
      store_dx(pl.last, dx_at(pl.last, affine, sums), pl.last_mask);
    }
  }
}
