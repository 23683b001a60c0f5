// Linear (fully connected): x [N,IN], weight [OUT,IN], bias [OUT] -> y [N,OUT].
// forward: y[n,o] = bias[o] + sum_i x[n,i] * weight[o,i]
// backward: restates the forward above; three products, each invocation one 4x4 tile of one:
//   dx[n,i]      = sum_o dy[n,o] * weight[o,i]
//   dweight[o,i] = sum_n dy[n,o] * x[n,i]
//   dbias[o]     = sum_n dy[n,o]          (a tile of 4 outputs)
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
//   4 dbias [OUT], 5 params, 6 dx [N,IN] (last, so that a stand-in can take its place
//   when there is no dx: then dx_groups is 0).

override WORKGROUP: u32 = 64;

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
      y[(n0 + k) * outs + o0 + j] = rows[k][j];
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
    // dx[n,i] = sum_o dy[n,o] * weight[o,i]: rows n0.., columns i0..
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
      acc0 += dy[n.x + o] * wv;
      acc1 += dy[n.y + o] * wv;
      acc2 += dy[n.z + o] * wv;
      acc3 += dy[n.w + o] * wv;
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
    // dweight[o,i] = sum_n dy[n,o] * x[n,i]: rows o0.., columns i0..
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
      acc0 += dy[g + o.x] * xv;
      acc1 += dy[g + o.y] * xv;
      acc2 += dy[g + o.z] * xv;
      acc3 += dy[g + o.w] * xv;
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
    // dbias[o] = sum_n dy[n,o]: outputs o0..o0+3
    let tile = w * WORKGROUP + t;
    let o0 = tile * 4u;
    if (o0 >= outs) {
      return;
    }
    let o = clamped(o0, outs);
    for (var n = 0u; n < batch; n++) {
      let g = n * outs;
      acc0 += vec4f(dy[g + o.x], dy[g + o.y], dy[g + o.z], dy[g + o.w]);
    }
    for (var j = 0u; j < 4u && o0 + j < outs; j++) {
      dbias[o0 + j] = acc0[j];
    }
  }
}
