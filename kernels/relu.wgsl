// ReLU, elementwise over a tensor of any shape, flattened to `count` values.
// forward:  y[i] = max(x[i], 0)
// backward: restates forward y = max(x, 0); dx[i] = dy[i] where x[i] > 0, else 0 (PyTorch:
//   the gradient at x == 0 is 0).
// One invocation handles ELEMENTS values, WORKGROUP apart, so that neighbouring invocations
// touch neighbouring values; a workgroup covers a block of WORKGROUP * ELEMENTS values, and
// blocks are numbered over a 2-D grid (block = wid.x + wid.y * num_workgroups.x).
// Index legend: i flat element, t invocation in the workgroup, j which of its ELEMENTS values.
// forward bindings: 0 x [count], 1 y [count], 2 params.
// backward bindings: 0 x [count], 1 dy [count], 2 dx [count], 3 params.

override WORKGROUP: u32 = 64;
override ELEMENTS: u32 = 4;

struct Params {
  count: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> backward_params: Params;

fn first_element(wid: vec3u, groups: vec3u, t: u32) -> u32 {
  return (wid.x + wid.y * groups.x) * WORKGROUP * ELEMENTS + t;
}

@compute @workgroup_size(WORKGROUP)
fn forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i < params.count) {
      y[i] = max(x[i], 0.0);
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i < backward_params.count) {
      dx[i] = select(0.0, dy[i], x[i] > 0.0);
    }
  }
}
