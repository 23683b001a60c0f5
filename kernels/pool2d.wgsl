// AvgPool2d and MaxPool2d over x [N,C,H,W] -> y [N,C,P,Q]: a R x R window every S pixels,
// no padding, floor mode (P = (H - R) / S + 1), PyTorch's semantics, optionally after an
// elementwise activation a (tanh, sigmoid or relu) fused in: y = pool(a(x)). Each plane
// (n,c) is pooled on its own, so the kernels see planes = N*C of them.
//
// avg_forward:  y[n,c,p,q] = sum_r,s a(x[n,c,p*S+r,q*S+s]) / R^2, summed in row-major order.
// max_forward:  y[n,c,p,q] = max_r,s a(x[n,c,p*S+r,q*S+s]), and indices[n,c,p,q] = h*W + w of
//   that max within the plane: the first one in row-major order when several are equal (as
//   PyTorch's CPU kernel; a NaN in the window is not propagated).
// avg_backward: restates avg_forward; g[n,c,h,w] = sum over the windows (p,q) that hold (h,w)
//   of dy[n,c,p,q] / R^2 (0 for pixels no window reaches), and dx = a'(x) * g.
// max_backward: restates max_forward; g[n,c,h,w] = sum over the windows (p,q) that hold (h,w)
//   and whose index is h*W + w of dy[n,c,p,q], and dx = a'(x) * g.
// a'(x) * g is what the activation's own backward (kernels/activation.wgsl, relu.wgsl) gives
// for the gradient g: tanh g (1 - t^2) and sigmoid g t (1 - t) from t = a(x) (PyTorch's, from
// the output), relu g where x > 0. The activation functions here are copies of those files'
// (the fused layer equals the unfused pair bit for bit: tests/pool2d_activation_test.ts).
//
// The shapes are override constants, so that the index arithmetic divides by constants (a
// multiply and a shift; a division by a uniform is emulated lane by lane on llvmpipe) and
// the window loops unroll; only the number of planes is a uniform (it follows the batch).
// Two backward schemes:
// - windows that do not overlap (S >= R, the common case): one invocation per window writes
//   its tile of dx, the S x S pixels from its top-left tap (the last row and column of
//   windows also take the pixels that floor mode leaves out): g there is the window's
//   dy / R^2 (avg), or dy at its argmax (max), or 0 outside the R x R taps. Every dx pixel
//   lies in one tile, so no two invocations write the same value, and dy is read once.
// - overlapping windows (S < R), the `_overlapping` entries: one invocation per dx pixel
//   gathers from the windows that hold it.
//
// One invocation handles ELEMENTS values (windows, or dx pixels when overlapping),
// WORKGROUP apart, so that neighbouring invocations touch neighbouring values; a workgroup
// covers a block of WORKGROUP * ELEMENTS values, blocks numbered over a 2-D grid of
// workgroups.
// Index legend: i flat window (or pixel) index, t invocation in the workgroup, j which of its
//   ELEMENTS, plane = n*C + c, (p,q) window, (h,w) input pixel, (r,s) tap or tile pixel.
// bindings:
//   avg_forward:  0 x [N,C,H,W], 1 y [N,C,P,Q], 2 params
//   max_forward:  0 x, 1 y, 2 params, 3 indices [N,C,P,Q] u32 (written)
//   avg_backward(_overlapping): 0 dy [N,C,P,Q], 1 dx [N,C,H,W], 2 params, 3 x (the forward's
//     input, read by the activation's derivative)
//   max_backward(_overlapping): 0 dy, 1 dx, 2 params, 3 x, 4 indices (read)

override WORKGROUP: u32 = 64;
override ELEMENTS: u32 = 4;
// The plane [HEIGHT, WIDTH], the windows [OUT_HEIGHT, OUT_WIDTH], R and S.
override HEIGHT: u32;
override WIDTH: u32;
override OUT_HEIGHT: u32;
override OUT_WIDTH: u32;
override KERNEL_SIZE: u32;
override STRIDE: u32;
// The fused activation: 0 none, 1 tanh, 2 sigmoid, 3 relu.
override ACTIVATION: u32 = 0;

struct Params {
  planes: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read_write> indices: array<u32>;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<storage, read> saved_x: array<f32>;
@group(0) @binding(4) var<storage, read> saved_indices: array<u32>;

fn first_element(wid: vec3u, groups: vec3u, t: u32) -> u32 {
  return (wid.x + wid.y * groups.x) * WORKGROUP * ELEMENTS + t;
}

// As kernels/activation.wgsl's tanh_of.
fn tanh_of(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

fn sigmoid_of(v: f32) -> f32 {
  return 1.0 / (1.0 + exp(-v));
}

// The fused activation of a tap, as its own forward kernel computes it.
fn activate(v: f32) -> f32 {
  switch ACTIVATION {
    case 1u: {
      return tanh_of(v);
    }
    case 2u: {
      return sigmoid_of(v);
    }
    case 3u: {
      return max(v, 0.0);
    }
    default: {
      return v;
    }
  }
}

// The activation's backward for the gradient g of its output at input v, as its own
// backward kernel computes it (tanh and sigmoid from the output, relu from the input).
fn activation_backward(g: f32, v: f32) -> f32 {
  switch ACTIVATION {
    case 1u: {
      let t = tanh_of(v);
      return g * (1.0 - t * t);
    }
    case 2u: {
      let t = sigmoid_of(v);
      return g * t * (1.0 - t);
    }
    case 3u: {
      return select(0.0, g, v > 0.0);
    }
    default: {
      return g;
    }
  }
}

// 0 + v: a sum that starts from 0 (as PyTorch accumulates into a zeroed gradient) turns a -0
// into +0. Written out, because the compiler folds 0.0 + v to v.
fn from_zero(v: f32) -> f32 {
  return select(v, 0.0, v == 0.0);
}

// Window i: its (p,q) and the first element of its plane in x.
struct Window {
  p: u32,
  q: u32,
  plane_first: u32,
}

fn window_of(i: u32) -> Window {
  let plane = i / (OUT_HEIGHT * OUT_WIDTH);
  let k = i - plane * OUT_HEIGHT * OUT_WIDTH;
  let p = k / OUT_WIDTH;
  return Window(p, k - p * OUT_WIDTH, plane * HEIGHT * WIDTH);
}

// The windows that hold input pixel `a` along one side: a first and a last one (first > last
// when none). A window b holds a when b*S <= a < b*S + R.
fn windows_of(a: u32, count: u32) -> vec2u {
  let first = select(0u, (a - KERNEL_SIZE) / STRIDE + 1u, a >= KERNEL_SIZE);
  let last = min(a / STRIDE, count - 1u);
  return vec2u(first, last);
}

@compute @workgroup_size(WORKGROUP)
fn avg_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let count = params.planes * OUT_HEIGHT * OUT_WIDTH;
  let area = f32(KERNEL_SIZE * KERNEL_SIZE);
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    let o = window_of(i);
    var row = o.plane_first + o.p * STRIDE * WIDTH + o.q * STRIDE;
    var sum = 0.0;
    for (var r = 0u; r < KERNEL_SIZE; r++) {
      for (var s = 0u; s < KERNEL_SIZE; s++) {
        sum += activate(x[row + s]);
      }
      row += WIDTH;
    }
    y[i] = sum / area;
  }
}

@compute @workgroup_size(WORKGROUP)
fn max_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let count = params.planes * OUT_HEIGHT * OUT_WIDTH;
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    let o = window_of(i);
    var row = o.plane_first + o.p * STRIDE * WIDTH + o.q * STRIDE;
    var best = activate(x[row]);
    var best_at = row;
    for (var r = 0u; r < KERNEL_SIZE; r++) {
      for (var s = 0u; s < KERNEL_SIZE; s++) {
        // Strictly greater: an equal value later in the window does not move the max.
        let v = activate(x[row + s]);
        if (v > best) {
          best = v;
          best_at = row + s;
        }
      }
      row += WIDTH;
    }
    y[i] = best;
    indices[i] = best_at - o.plane_first;
  }
}

// Windows that do not overlap (S >= R): window (p,q)'s tile of dx is the pixels
// (p*S + r, q*S + s) for r < S, s < S, and for the last row (column) of windows every row
// (column) down to the plane's edge: LAST_ROWS = H - (P-1)*S of them, which may be fewer or
// more than S. `g(r, s)` of a tile pixel is the pooling's gradient there.
fn tile_rows(p: u32) -> u32 {
  return select(STRIDE, HEIGHT - (OUT_HEIGHT - 1u) * STRIDE, p == OUT_HEIGHT - 1u);
}

fn tile_columns(q: u32) -> u32 {
  return select(STRIDE, WIDTH - (OUT_WIDTH - 1u) * STRIDE, q == OUT_WIDTH - 1u);
}

// The most rows (columns) a tile has, a constant: the loops over it unroll.
fn most_tile_rows() -> u32 {
  return max(STRIDE, HEIGHT - (OUT_HEIGHT - 1u) * STRIDE);
}

fn most_tile_columns() -> u32 {
  return max(STRIDE, WIDTH - (OUT_WIDTH - 1u) * STRIDE);
}

@compute @workgroup_size(WORKGROUP)
fn avg_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let count = params.planes * OUT_HEIGHT * OUT_WIDTH;
  let area = f32(KERNEL_SIZE * KERNEL_SIZE);
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    let o = window_of(i);
    let rows = tile_rows(o.p);
    let columns = tile_columns(o.q);
    let g = from_zero(dy[i]) / area;
    var row = o.plane_first + o.p * STRIDE * WIDTH + o.q * STRIDE;
    for (var r = 0u; r < most_tile_rows(); r++) {
      for (var s = 0u; s < most_tile_columns(); s++) {
        if (r < rows && s < columns) {
          let tap = select(0.0, g, r < KERNEL_SIZE && s < KERNEL_SIZE);
          dx[row + s] = activation_backward(tap, saved_x[row + s]);
        }
      }
      row += WIDTH;
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn max_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let count = params.planes * OUT_HEIGHT * OUT_WIDTH;
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    let o = window_of(i);
    let rows = tile_rows(o.p);
    let columns = tile_columns(o.q);
    let g = from_zero(dy[i]);
    // The max's element in x, and the tile's first.
    let best_at = o.plane_first + saved_indices[i];
    var row = o.plane_first + o.p * STRIDE * WIDTH + o.q * STRIDE;
    for (var r = 0u; r < most_tile_rows(); r++) {
      for (var s = 0u; s < most_tile_columns(); s++) {
        if (r < rows && s < columns) {
          let tap = select(0.0, g, row + s == best_at);
          dx[row + s] = activation_backward(tap, saved_x[row + s]);
        }
      }
      row += WIDTH;
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn avg_backward_overlapping(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let count = params.planes * HEIGHT * WIDTH;
  let area = f32(KERNEL_SIZE * KERNEL_SIZE);
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    let plane = i / (HEIGHT * WIDTH);
    let here = i - plane * HEIGHT * WIDTH;
    let h = here / WIDTH;
    let ps = windows_of(h, OUT_HEIGHT);
    let qs = windows_of(here - h * WIDTH, OUT_WIDTH);
    var sum = 0.0;
    for (var p = ps.x; p <= ps.y; p++) {
      let row = (plane * OUT_HEIGHT + p) * OUT_WIDTH;
      for (var q = qs.x; q <= qs.y; q++) {
        sum += dy[row + q];
      }
    }
    dx[i] = activation_backward(sum / area, saved_x[i]);
  }
}

@compute @workgroup_size(WORKGROUP)
fn max_backward_overlapping(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let count = params.planes * HEIGHT * WIDTH;
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    let plane = i / (HEIGHT * WIDTH);
    let here = i - plane * HEIGHT * WIDTH;
    let h = here / WIDTH;
    let ps = windows_of(h, OUT_HEIGHT);
    let qs = windows_of(here - h * WIDTH, OUT_WIDTH);
    var sum = 0.0;
    for (var p = ps.x; p <= ps.y; p++) {
      let row = (plane * OUT_HEIGHT + p) * OUT_WIDTH;
      for (var q = qs.x; q <= qs.y; q++) {
        if (saved_indices[row + q] == here) {
          sum += dy[row + q];
        }
      }
    }
    dx[i] = activation_backward(sum, saved_x[i]);
  }
}
