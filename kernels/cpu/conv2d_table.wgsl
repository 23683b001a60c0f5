// The CPU wing's table Conv2d (lib/cpu/conv2d_table.ts) runs the wing's dense Conv2d
// (kernels/cpu/conv2d.wgsl) on a dense weight [K,C,R,R] whose missing connections hold 0:
// llvmpipe runs the dense product, 96/60 of C3's multiply-adds, faster than the table
// kernels run the table (kernels/conv2d_table.wgsl says why). These two move the weights
// between the table's layout and the dense one.
//
// scatter_weights: dense[slot[e] * RR + t] = w[e * RR + t]; the missing connections are
//   never written and keep the 0 the buffer was made with.
// gather_grads:    dw[e * RR + t] = ddense[slot[e] * RR + t].
// Index legend: e connection (table order), t tap of its R x R kernel, RR = R*R, slot[e] =
//   k*C + c of connection e (output map k, input map c); i = e * RR + t, one invocation each.
// bindings: scatter_weights: 0 w [E,R,R], 1 dense [K,C,R,R], 2 slot [E] u32, 3 params
//           gather_grads:    0 ddense [K,C,R,R], 1 dw [E,R,R], 2 slot [E] u32, 3 params

override WORKGROUP: u32 = 64;

struct Params {
  // R*R
  taps: u32,
  // E*R*R
  count: u32,
}

@group(0) @binding(0) var<storage, read> table_w: array<f32>;
@group(0) @binding(1) var<storage, read_write> dense_w: array<f32>;
@group(0) @binding(2) var<storage, read> slot: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> dense_dw: array<f32>;
@group(0) @binding(1) var<storage, read_write> table_dw: array<f32>;

fn flat_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP;
}

// The dense index of table index i.
fn dense_index(i: u32) -> u32 {
  return slot[i / params.taps] * params.taps + i % params.taps;
}

@compute @workgroup_size(WORKGROUP)
fn scatter_weights(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i < params.count) {
    dense_w[dense_index(i)] = table_w[i];
  }
}

@compute @workgroup_size(WORKGROUP)
fn gather_grads(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i < params.count) {
    table_dw[i] = dense_dw[dense_index(i)];
  }
}
