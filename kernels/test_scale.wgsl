// A tiny kernel for the runtime's own tests: y[i] = scale * x[i].
// One invocation computes one element; the flat index spans a 2-D grid of workgroups.
// bindings: 0 x [n] f32, 1 y [n] f32, 2 params {n, scale}

override WORKGROUP: u32 = 64;

struct Params {
  n: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i >= params.n) {
    return;
  }
  y[i] = params.scale * x[i];
}
