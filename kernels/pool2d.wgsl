// AvgPool2d and MaxPool2d over x [N,C,H,W] -> y [N,C,P,Q]: a R x R window every S pixels,
// no padding, floor mode (P = (H - R) / S + 1), PyTorch's semantics. Each plane (n,c) is
// pooled on its own, so the kernels see planes = N*C of them.
//
// avg_forward:  y[n,c,p,q] = sum_r,s x[n,c,p*S+r,q*S+s] / R^2
// avg_backward: restates avg_forward; dx[n,c,h,w] = sum over the windows (p,q) that hold
//   (h,w) of dy[n,c,p,q] / R^2 (0 for pixels no window reaches).
// max_forward:  y[n,c,p,q] = max_r,s x[n,c,p*S+r,q*S+s], and indices[n,c,p,q] = h*W + w of
//   that max within the plane: the first one in row-major order when several are equal (as
//   PyTorch's CPU kernel; a NaN in the window is not propagated).
// max_backward: restates max_forward; dx[n,c,h,w] = sum over the windows (p,q) that hold
//   (h,w) and whose index is h*W + w of dy[n,c,p,q]. Each dx value gathers from its windows
//   (no scatter), so overlapping windows (S < R) need no atomics.
//
// One invocation handles ELEMENTS values of its output (y, or dx in a backward), WORKGROUP
// apart, so that neighbouring invocations touch neighbouring values; a workgroup covers a
// block of WORKGROUP * ELEMENTS values, blocks numbered over a 2-D grid of workgroups.
// Index legend: i flat output index, t invocation in the workgroup, j which of its ELEMENTS,
//   plane = n*C + c, (p,q) window, (h,w) input pixel, (r,s) tap in the window.
// bindings:
//   avg_forward:  0 x [N,C,H,W], 1 y [N,C,P,Q], 2 params
//   avg_backward: 0 dy [N,C,P,Q], 1 dx [N,C,H,W], 2 params
//   max_forward:  0 x, 1 y, 2 params, 3 indices [N,C,P,Q] u32 (written)
//   max_backward: 0 dy, 1 dx, 2 params, 3 indices (read)

override WORKGROUP: u32 = 64;
override ELEMENTS: u32 = 4;

struct Params {
  planes: u32,
  height: u32,
  width: u32,
  out_height: u32,
  out_width: u32,
  kernel_size: u32,
  stride: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read_write> indices: array<u32>;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<storage, read> saved_indices: array<u32>;

fn first_element(wid: vec3u, groups: vec3u, t: u32) -> u32 {
  return (wid.x + wid.y * groups.x) * WORKGROUP * ELEMENTS + t;
}

// The first element of window i's plane and of its top-left tap, in x.
fn window_origin(i: u32) -> vec2u {
  let u = params;
  let plane = i / (u.out_height * u.out_width);
  let p = (i / u.out_width) % u.out_height;
  let q = i % u.out_width;
  let first = plane * u.height * u.width;
  return vec2u(first, first + p * u.stride * u.width + q * u.stride);
}

// The windows that hold input pixel `a` along one side: a first and a last one (first > last
// when none). A window b holds a when b*S <= a < b*S + R.
fn windows_of(a: u32, kernel_size: u32, stride: u32, count: u32) -> vec2u {
  let first = select(0u, (a - kernel_size) / stride + 1u, a >= kernel_size);
  let last = min(a / stride, count - 1u);
  return vec2u(first, last);
}

@compute @workgroup_size(WORKGROUP)
fn avg_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let u = params;
  let count = u.planes * u.out_height * u.out_width;
  let area = f32(u.kernel_size * u.kernel_size);
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    var row = window_origin(i).y;
    var sum = 0.0;
    for (var r = 0u; r < u.kernel_size; r++) {
      for (var s = 0u; s < u.kernel_size; s++) {
        sum += x[row + s];
      }
      row += u.width;
    }
    y[i] = sum / area;
  }
}

@compute @workgroup_size(WORKGROUP)
fn avg_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let u = params;
  let count = u.planes * u.height * u.width;
  let area = f32(u.kernel_size * u.kernel_size);
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    let plane = i / (u.height * u.width);
    let ps = windows_of((i / u.width) % u.height, u.kernel_size, u.stride, u.out_height);
    let qs = windows_of(i % u.width, u.kernel_size, u.stride, u.out_width);
    var sum = 0.0;
    for (var p = ps.x; p <= ps.y; p++) {
      let row = (plane * u.out_height + p) * u.out_width;
      for (var q = qs.x; q <= qs.y; q++) {
        sum += dy[row + q];
      }
    }
    dx[i] = sum / area;
  }
}

@compute @workgroup_size(WORKGROUP)
fn max_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let u = params;
  let count = u.planes * u.out_height * u.out_width;
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    let origin = window_origin(i);
    var row = origin.y;
    var best = x[row];
    var best_at = row;
    for (var r = 0u; r < u.kernel_size; r++) {
      for (var s = 0u; s < u.kernel_size; s++) {
        // Strictly greater: an equal value later in the window does not move the max.
        let v = x[row + s];
        if (v > best) {
          best = v;
          best_at = row + s;
        }
      }
      row += u.width;
    }
    y[i] = best;
    indices[i] = best_at - origin.x;
  }
}

@compute @workgroup_size(WORKGROUP)
fn max_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let u = params;
  let count = u.planes * u.height * u.width;
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i >= count) {
      return;
    }
    let plane = i / (u.height * u.width);
    let here = i % (u.height * u.width);
    let ps = windows_of(here / u.width, u.kernel_size, u.stride, u.out_height);
    let qs = windows_of(here % u.width, u.kernel_size, u.stride, u.out_width);
    var sum = 0.0;
    for (var p = ps.x; p <= ps.y; p++) {
      let row = (plane * u.out_height + p) * u.out_width;
      for (var q = qs.x; q <= qs.y; q++) {
        if (saved_indices[row + q] == here) {
          sum += dy[row + q];
        }
      }
    }
    dx[i] = sum;
  }
}
