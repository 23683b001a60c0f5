// Adaptive average pooling to 1x1: x [N,C,H,W] -> y [N,C,1,1], the mean of each plane.
// forward: one invocation per row r = n*C + c (rows = N*C):
//   y[r] = sum_p x[r * plane + p] / plane
// backward: restates forward y[r] = sum_p x[r * plane + p] / plane; one invocation handles
//   ELEMENTS values of dx, WORKGROUP apart: dx[i] = dy[i / plane] / plane
// Index legend: r row (an image's channel), p = h*W + w position in the plane (plane = H*W),
//   i flat element of dx, t invocation in the workgroup. Flat indices span a 2-D grid of
//   workgroups (wid.x + wid.y * num_workgroups.x).
// forward bindings: 0 x [N,C,H,W], 1 y [N,C], 2 params.
// backward bindings: 0 dy [N,C], 1 dx [N,C,H,W], 2 params.

override WORKGROUP: u32 = 64;
override ELEMENTS: u32 = 4;

struct Params {
  rows: u32,
  plane: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let r = gid.x + gid.y * groups.x * WORKGROUP;
  if (r >= params.rows) {
    return;
  }
  let plane = params.plane;
  // Two accumulators halve the dependency chain of the sum.
  var even = 0.0;
  var odd = 0.0;
  var p = 0u;
  for (; p + 1u < plane; p += 2u) {
    even += x[r * plane + p];
    odd += x[r * plane + p + 1u];
  }
  if (p < plane) {
    even += x[r * plane + p];
  }
  y[r] = (even + odd) / f32(plane);
}

@compute @workgroup_size(WORKGROUP)
fn backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let plane = params.plane;
  let count = params.rows * plane;
  let start = (wid.x + wid.y * groups.x) * WORKGROUP * ELEMENTS + t;
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i < count) {
      dx[i] = dy[i / plane] / f32(plane);
    }
  }
}
