// The classic activations, elementwise over a tensor of any shape flattened to `count`
// values: one family, because every entry point has the same indexing and bindings and only
// the formula differs. (ReLU, which the backward computes from x, lives in relu.wgsl.)
//
// tanh_forward:     y[i] = tanh(x[i]), as sign(x) (1 - e) / (1 + e) with e = exp(-2|x|): no
//                   overflow for any x (exp(2x) would reach inf at x = 45 and give inf/inf).
// tanh_backward:    restates tanh_forward y = tanh(x); dx[i] = dy[i] * (1 - y[i]^2), from the
//                   output y as PyTorch does.
// sigmoid_forward:  y[i] = 1 / (1 + exp(-x[i])) (exp(-x) = inf for x < -88 gives exactly 0).
// sigmoid_backward: restates sigmoid_forward y = 1 / (1 + exp(-x));
//                   dx[i] = dy[i] * y[i] * (1 - y[i]).
//
// One invocation handles ELEMENTS values, WORKGROUP apart, so that neighbouring invocations
// touch neighbouring values; a workgroup covers a block of WORKGROUP * ELEMENTS values, and
// blocks are numbered over a 2-D grid (block = wid.x + wid.y * num_workgroups.x).
// kernels/pool2d.wgsl, which fuses these activations into a pooling, holds copies of these
// formulas: change both (tests/pool2d_activation_test.ts checks that they give the same floats).
// Index legend: i flat element, t invocation in the workgroup, j which of its ELEMENTS values.
// forward bindings: 0 x [count], 1 y [count], 2 params.
// backward bindings: 0 y [count] (the forward's output), 1 dy [count], 2 dx [count], 3 params.

override WORKGROUP: u32 = 64;
override ELEMENTS: u32 = 4;

struct Params {
  count: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> saved_y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> backward_params: Params;

fn first_element(wid: vec3u, groups: vec3u, t: u32) -> u32 {
  return (wid.x + wid.y * groups.x) * WORKGROUP * ELEMENTS + t;
}

fn tanh_of(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(WORKGROUP)
fn tanh_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i < params.count) {
      y[i] = tanh_of(x[i]);
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn tanh_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i < backward_params.count) {
      let v = saved_y[i];
      dx[i] = dy[i] * (1.0 - v * v);
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn sigmoid_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i < params.count) {
      y[i] = 1.0 / (1.0 + exp(-x[i]));
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn sigmoid_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let start = first_element(wid, groups, t);
  for (var j = 0u; j < ELEMENTS; j++) {
    let i = start + j * WORKGROUP;
    if (i < backward_params.count) {
      let v = saved_y[i];
      dx[i] = dy[i] * v * (1.0 - v);
    }
  }
}
