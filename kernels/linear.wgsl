// Linear (fully connected): x [N,IN], weight [OUT,IN], bias [OUT] -> y [N,OUT], optionally
// with an elementwise activation a (tanh, sigmoid or relu) after it fused in.
// forward: y[n,o] = a(bias[o] + sum_i x[n,i] * weight[o,i])
// backward: restates the forward above; g[n,o] = a'(.) * dy[n,o], the gradient before the
//   activation, computed from the output y where dy is read; three products, each
//   invocation one 4x4 tile of one:
//   dx[n,i]      = sum_o g[n,o] * weight[o,i]
//   dweight[o,i] = sum_n g[n,o] * x[n,i]
//   dbias[o]     = sum_n g[n,o]          (a tile of 4 outputs)
// g is what the activation's own backward (kernels/activation.wgsl, relu.wgsl) gives for dy,
// from the output as PyTorch does: tanh dy (1 - y^2), sigmoid dy y (1 - y), relu dy where
// y > 0 (the same as x > 0: max(x, 0) > 0 exactly when x > 0). The activation functions
// here are copies of those files' (the fused layer equals the unfused pair bit for bit:
// tests/linear_activation_test.ts).
// The backward runs as one dispatch: its workgroups are split into three ranges, one per
// product (dx first, then dweight, then dbias), so that no workgroup mixes two of them.
// Tiles at the edges read clamped rows and columns and skip writing them.
//
// Index legend: n image, i input feature, o output feature; a tile covers 4 consecutive
// values of both of its output's indices and keeps its 16 sums in four vec4 accumulators
// (acc_k: row k of the tile, across 4 columns). Flat workgroup index w = wid.x + wid.y *
// num_workgroups.x (a 2-D grid for large batches).
// forward bindings: 0 x [N,IN], 1 weight [OUT,IN], 2 bias [OUT], 3 y [N,OUT], 4 params.
// backward bindings: 0 x [N,IN], 1 weight [OUT,IN], 2 dy [N,OUT], 3 dweight [OUT,IN],
//   4 dbias [OUT], 5 params, 6 dx [N,IN] (so that a stand-in can take its place when
//   there is no dx: then dx_groups is 0), 7 y [N,OUT] (the forward's output, read by the
//   activation's derivative; bound without an activation too, unread).

override WORKGROUP: u32 = 64;
// The fused activation: 0 none, 1 tanh, 2 sigmoid, 3 relu.
override ACTIVATION: u32 = 0;

struct Params {
  batch: u32,
  in_features: u32,
  out_features: u32,
  // backward: how many workgroups compute dx, dweight and dbias.
  dx_groups: u32,
  dweight_groups: u32,
  dbias_groups: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(5) var<uniform> backward_params: Params;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read> saved_y: array<f32>;

// As kernels/activation.wgsl's tanh_of.
fn tanh_of(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

// The fused activation of an output, as its own forward kernel computes it.
fn activate(v: f32) -> f32 {
  switch ACTIVATION {
    case 1u: {
      return tanh_of(v);
    }
    case 2u: {
      return 1.0 / (1.0 + exp(-v));
    }
    case 3u: {
      return max(v, 0.0);
    }
    default: {
      return v;
    }
  }
}

// g at flat index at of [N,OUT]: dy through the activation's backward, as its own backward
// kernel computes it from the output v.
fn grad(at: u32) -> f32 {
  let d = dy[at];
  switch ACTIVATION {
    case 1u: {
      let v = saved_y[at];
      return d * (1.0 - v * v);
    }
    case 2u: {
      let v = saved_y[at];
      return d * v * (1.0 - v);
    }
    case 3u: {
      return select(0.0, d, saved_y[at] > 0.0);
    }
    default: {
      return d;
    }
  }
}

// The 4 indices of a tile starting at `first`, clamped to `count - 1` (for reads).
fn clamped(first: u32, count: u32) -> vec4u {
  return min(vec4u(first) + vec4u(0u, 1u, 2u, 3u), vec4u(count - 1u));
}

@compute @workgroup_size(WORKGROUP)
fn forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let batch = params.batch;
  let ins = params.in_features;
  let outs = params.out_features;
  let o_tiles = (outs + 3u) / 4u;
  let tile = (wid.x + wid.y * groups.x) * WORKGROUP + t;
  if (tile >= (batch + 3u) / 4u * o_tiles) {
    return;
  }
  let n0 = tile / o_tiles * 4u;
  let o0 = tile % o_tiles * 4u;
  let n = clamped(n0, batch) * ins;
  let o = clamped(o0, outs) * ins;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var i = 0u; i < ins; i++) {
    let w = vec4f(weight[o.x + i], weight[o.y + i], weight[o.z + i], weight[o.w + i]);
    acc0 += x[n.x + i] * w;
    acc1 += x[n.y + i] * w;
    acc2 += x[n.z + i] * w;
    acc3 += x[n.w + i] * w;
  }
  let ob = clamped(o0, outs);
  let b = vec4f(bias[ob.x], bias[ob.y], bias[ob.z], bias[ob.w]);
  let rows = array(acc0 + b, acc1 + b, acc2 + b, acc3 + b);
  for (var k = 0u; k < 4u && n0 + k < batch; k++) {
    for (var j = 0u; j < 4u && o0 + j < outs; j++) {
      y[(n0 + k) * outs + o0 + j] = activate(rows[k][j]);
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let batch = backward_params.batch;
  let ins = backward_params.in_features;
  let outs = backward_params.out_features;
  let i_tiles = (ins + 3u) / 4u;
  var w = wid.x + wid.y * groups.x;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);

  if (w < backward_params.dx_groups) {
    // dx[n,i] = sum_o g[n,o] * weight[o,i]: rows n0.., columns i0..
    let tile = w * WORKGROUP + t;
    if (tile >= (batch + 3u) / 4u * i_tiles) {
      return;
    }
    let n0 = tile / i_tiles * 4u;
    let i0 = tile % i_tiles * 4u;
    let n = clamped(n0, batch) * outs;
    let i = clamped(i0, ins);
    for (var o = 0u; o < outs; o++) {
      let row = o * ins;
      let wv = vec4f(weight[row + i.x], weight[row + i.y], weight[row + i.z], weight[row + i.w]);
      acc0 += grad(n.x + o) * wv;
      acc1 += grad(n.y + o) * wv;
      acc2 += grad(n.z + o) * wv;
      acc3 += grad(n.w + o) * wv;
    }
    let rows = array(acc0, acc1, acc2, acc3);
    for (var k = 0u; k < 4u && n0 + k < batch; k++) {
      for (var j = 0u; j < 4u && i0 + j < ins; j++) {
        dx[(n0 + k) * ins + i0 + j] = rows[k][j];
      }
    }
    return;
  }
  w -= backward_params.dx_groups;

  if (w < backward_params.dweight_groups) {
    // dweight[o,i] = sum_n g[n,o] * x[n,i]: rows o0.., columns i0..
    let tile = w * WORKGROUP + t;
    if (tile >= (outs + 3u) / 4u * i_tiles) {
      return;
    }
    let o0 = tile / i_tiles * 4u;
    let i0 = tile % i_tiles * 4u;
    let o = clamped(o0, outs);
    let i = clamped(i0, ins);
    for (var n = 0u; n < batch; n++) {
      let xrow = n * ins;
      let xv = vec4f(x[xrow + i.x], x[xrow + i.y], x[xrow + i.z], x[xrow + i.w]);
      let g = n * outs;
      acc0 += grad(g + o.x) * xv;
      acc1 += grad(g + o.y) * xv;
      acc2 += grad(g + o.z) * xv;
      acc3 += grad(g + o.w) * xv;
    }
    let rows = array(acc0, acc1, acc2, acc3);
    for (var k = 0u; k < 4u && o0 + k < outs; k++) {
      for (var j = 0u; j < 4u && i0 + j < ins; j++) {
        dweight[(o0 + k) * ins + i0 + j] = rows[k][j];
      }
    }
    return;
  }
  w -= backward_params.dweight_groups;

  if (w < backward_params.dbias_groups) {
    // dbias[o] = sum_n g[n,o]: outputs o0..o0+3
    let tile = w * WORKGROUP + t;
    let o0 = tile * 4u;
    if (o0 >= outs) {
      return;
    }
    let o = clamped(o0, outs);
    for (var n = 0u; n < batch; n++) {
      let g = n * outs;
      acc0 += vec4f(grad(g + o.x), grad(g + o.y), grad(g + o.z), grad(g + o.w));
    }
    for (var j = 0u; j < 4u && o0 + j < outs; j++) {
      dbias[o0 + j] = acc0[j];
    }
  }
}
