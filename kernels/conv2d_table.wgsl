// Conv2d with a connection table, LeNet-5's C3 (LeCun et al. 1998, Table I): output map k
// reads only the input maps its table row lists, each through an R x R kernel of its own.
// Stride 1, no padding. Only the connections that exist are computed and stored: the weight
// holds one kernel per connection, w [E,R,R], not a dense [K,C,R,R] with zeros.
//
// forward: y[n,k,p,q] = b[k] + sum over the connections e of k (input map c = channel[e])
//          of sum_r,s x[n,c,p+r,q+s] * w[e,r,s]
//
// legend: n image, k output map, c input map, e connection (numbered in table order: k
// ascending, then c ascending), (p,q) output pixel, (h,w) input pixel, (r,s) tap, R kernel
// size; P = H - R + 1, Q = W - R + 1; E connections.
// table, u32, five sections one after the other (the layer builds it from the table):
//   out_start [K+1]  the connections of map k are e = out_start[k] .. out_start[k+1] - 1
//   in_start [C+1]   the connections that read map c are in_list[in_start[c] .. in_start[c+1] - 1]
//   channel [E]      the input map of connection e
//   output [E]       the output map of connection e
//   in_list [E]      connection numbers grouped by input map (k ascending within a map)
//
// Every entry point slides a window of 8 values along a row: 8 outputs of a row need the
// 8 + R - 1 inputs from their first one, and tap s + 1 sees the window of tap s moved by one.
// So a kernel row costs 8 + R loads for 8 R multiply-adds, where one output at a time would
// load once per multiply-add. The window is two vec4s, shifted by one value per tap.
// Windows that run past the end of a row only feed outputs that are not stored: their loads
// are clamped to the row (any value will do).
//
// bindings (per entry point, numbered from 0 in the order listed):
//   forward:         x [N,C,H,W], w [E,R,R], b [K], y [N,K,P,Q], table, params
//   backward_input:  dy [N,K,P,Q], w [E,R,R], dx [N,C,H,W], table, params
//   backward_weight: x [N,C,H,W], dy [N,K,P,Q], dw [E,R,R], db [K], table, params

// Invocations per workgroup.
override WORKGROUP: u32 = 64;
// R, the kernel size (1..8): a constant, so that the loops over taps have a trip count the
// compiler knows and can unroll.
override KERNEL: u32 = 5;
// backward_weight: lanes that share one (connection, kernel row) and split its reduction
// over the (n,p) rows of dy; a power of two that divides WORKGROUP.
override SPLIT: u32 = 8;

struct Params {
  batch: u32,
  in_channels: u32,
  height: u32,
  width: u32,
  out_channels: u32,
  out_height: u32,
  out_width: u32,
  connections: u32,
}

// The sections of the table.
fn out_start(u: Params, k: u32) -> u32 {
  return k;
}
fn in_start(u: Params, c: u32) -> u32 {
  return u.out_channels + 1u + c;
}
fn channel_of(u: Params, e: u32) -> u32 {
  return u.out_channels + u.in_channels + 2u + e;
}
fn output_of(u: Params, e: u32) -> u32 {
  return u.out_channels + u.in_channels + 2u + u.connections + e;
}
fn in_list(u: Params, j: u32) -> u32 {
  return u.out_channels + u.in_channels + 2u + 2u * u.connections + j;
}

@group(0) @binding(0) var<storage, read> fx: array<f32>;
@group(0) @binding(1) var<storage, read> fw: array<f32>;
@group(0) @binding(2) var<storage, read> fb: array<f32>;
@group(0) @binding(3) var<storage, read_write> fy: array<f32>;
@group(0) @binding(4) var<storage, read> ftable: array<u32>;
@group(0) @binding(5) var<uniform> fparams: Params;

// x[first + j] for j = 0..3, clamped to `last`.
fn load_x(first: u32, last: u32) -> vec4f {
  return vec4f(fx[min(first, last)], fx[min(first + 1u, last)], fx[min(first + 2u, last)],
    fx[min(first + 3u, last)]);
}

// forward: one invocation = y for output map k, image n, row p, columns q0..q0+7.
// Invocations are numbered k slowest, so that the lanes of a workgroup share k: the same
// connections (a uniform loop) and the same weights.
@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = fparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let column_blocks = (u.out_width + 7u) / 8u;
  let rows = u.batch * u.out_height;
  if (i >= u.out_channels * rows * column_blocks) {
    return;
  }
  let k = i / (rows * column_blocks);
  let row = (i / column_blocks) % rows;
  let q0 = (i % column_blocks) * 8u;
  let n = row / u.out_height;
  let p = row % u.out_height;
  let rr = KERNEL * KERNEL;

  var ya = vec4f(fb[k]);
  var yb = ya;
  for (var e = ftable[out_start(u, k)]; e < ftable[out_start(u, k + 1u)]; e++) {
    let c = ftable[channel_of(u, e)];
    var xrow = ((n * u.in_channels + c) * u.height + p) * u.width + q0;
    var wi = e * rr;
    for (var r = 0u; r < KERNEL; r++) {
      let last = xrow - q0 + u.width - 1u;
      var a = load_x(xrow, last);
      var b = load_x(xrow + 4u, last);
      for (var s = 0u; s < KERNEL; s++) {
        let w = fw[wi + s];
        ya += w * a;
        yb += w * b;
        a = vec4f(a.yzw, b.x);
        b = vec4f(b.yzw, fx[min(xrow + 8u + s, last)]);
      }
      xrow += u.width;
      wi += KERNEL;
    }
  }
  let out = ((n * u.out_channels + k) * u.out_height + p) * u.out_width + q0;
  for (var j = 0u; j < 4u && q0 + j < u.out_width; j++) {
    fy[out + j] = ya[j];
  }
  for (var j = 4u; j < 8u && q0 + j < u.out_width; j++) {
    fy[out + j] = yb[j - 4u];
  }
}

@group(0) @binding(0) var<storage, read> idy: array<f32>;
@group(0) @binding(1) var<storage, read> iw: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<f32>;
@group(0) @binding(3) var<storage, read> itable: array<u32>;
@group(0) @binding(4) var<uniform> iparams: Params;

// dy[first + col] for an output column `col` that may lie outside 0..Q-1 (then 0).
fn dy_at(first: u32, col: i32, width: u32) -> f32 {
  return select(0.0, idy[first + min(u32(col), width - 1u)], u32(col) < width);
}

// backward_input: dx[n,c,h,w] = sum over the connections e = (k, c) that read map c of
// sum_r,s dy[n,k,h-r,w-s] * w[e,r,s], for the taps with 0 <= h-r < P and 0 <= w-s < Q.
// One invocation = dx for input map c, image n, row h, columns w0..w0+7; numbered c slowest.
// The window holds dy's columns w0+j-s: tap s = R-1 first, each next tap (s - 1) moves it by one.
@compute @workgroup_size(WORKGROUP)
fn backward_input(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = iparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let column_blocks = (u.width + 7u) / 8u;
  let rows = u.batch * u.height;
  if (i >= u.in_channels * rows * column_blocks) {
    return;
  }
  let c = i / (rows * column_blocks);
  let row = (i / column_blocks) % rows;
  let w0 = (i % column_blocks) * 8u;
  let n = row / u.height;
  let h = row % u.height;
  let rr = KERNEL * KERNEL;
  let first = i32(w0) - i32(KERNEL) + 1;

  var da = vec4f();
  var db = vec4f();
  for (var j = itable[in_start(u, c)]; j < itable[in_start(u, c + 1u)]; j++) {
    let e = itable[in_list(u, j)];
    let k = itable[output_of(u, e)];
    for (var r = 0u; r < KERNEL; r++) {
      // Output row p = h - r, when it exists (u32: h < r wraps past P).
      let p = h - r;
      if (p >= u.out_height) {
        continue;
      }
      let yrow = ((n * u.out_channels + k) * u.out_height + p) * u.out_width;
      var a = vec4f(dy_at(yrow, first, u.out_width), dy_at(yrow, first + 1, u.out_width),
        dy_at(yrow, first + 2, u.out_width), dy_at(yrow, first + 3, u.out_width));
      var b = vec4f(dy_at(yrow, first + 4, u.out_width), dy_at(yrow, first + 5, u.out_width),
        dy_at(yrow, first + 6, u.out_width), dy_at(yrow, first + 7, u.out_width));
      let wi = e * rr + r * KERNEL + KERNEL - 1u;
      for (var t = 0u; t < KERNEL; t++) {
        let w = iw[wi - t];
        da += w * a;
        db += w * b;
        a = vec4f(a.yzw, b.x);
        b = vec4f(b.yzw, dy_at(yrow, first + 8 + i32(t), u.out_width));
      }
    }
  }
  let out = ((n * u.in_channels + c) * u.height + h) * u.width + w0;
  for (var j = 0u; j < 4u && w0 + j < u.width; j++) {
    idx[out + j] = da[j];
  }
  for (var j = 4u; j < 8u && w0 + j < u.width; j++) {
    idx[out + j] = db[j - 4u];
  }
}

@group(0) @binding(0) var<storage, read> wx: array<f32>;
@group(0) @binding(1) var<storage, read> wdy: array<f32>;
@group(0) @binding(2) var<storage, read_write> wdw: array<f32>;
@group(0) @binding(3) var<storage, read_write> wdb: array<f32>;
@group(0) @binding(4) var<storage, read> wtable: array<u32>;
@group(0) @binding(5) var<uniform> wparams: Params;

// Each lane's two accumulators.
var<workgroup> partial: array<vec4f, 2u * WORKGROUP>;

// backward_weight: dw[e,r,s] = sum_n,p,q dy[n,k,p,q] * x[n,c,p+r,q+s] for e = (k, c), and
// db[k] = sum_n,p,q dy[n,k,p,q]. A block = one (e, r): dw[e,r,0..R-1] (R <= 8), or, for the
// last K blocks, one db[k]. SPLIT lanes share a block, lane l summing the (n,p) rows l,
// l+SPLIT, ... of dy; then lane l adds up, in lane order, the SPLIT parts of taps l, l+SPLIT, ...
// Along a row the window holds x[n,c,p+r,q..q+7]: dy[q] times it adds to all 8 taps at once.
@compute @workgroup_size(WORKGROUP)
fn backward_weight(
  @builtin(local_invocation_index) lane: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = wparams;
  let weight_blocks = u.connections * KERNEL;
  let blocks = weight_blocks + u.out_channels;
  let slice = lane % SPLIT;
  let block = (wid.x + wid.y * groups.x) * (WORKGROUP / SPLIT) + lane / SPLIT;
  // Lanes past the last block compute on the last one and store nothing: they must still
  // reach the barrier.
  let b = min(block, blocks - 1u);
  let rows = u.batch * u.out_height;

  var acc_a = vec4f();
  var acc_b = vec4f();
  if (b < weight_blocks) {
    let e = b / KERNEL;
    let r = b % KERNEL;
    let k = wtable[output_of(u, e)];
    let c = wtable[channel_of(u, e)];
    for (var row = slice; row < rows; row += SPLIT) {
      let n = row / u.out_height;
      let p = row % u.out_height;
      let xrow = ((n * u.in_channels + c) * u.height + p + r) * u.width;
      let last = xrow + u.width - 1u;
      let yrow = ((n * u.out_channels + k) * u.out_height + p) * u.out_width;
      var a = vec4f(wx[xrow], wx[min(xrow + 1u, last)], wx[min(xrow + 2u, last)],
        wx[min(xrow + 3u, last)]);
      var bb = vec4f(wx[min(xrow + 4u, last)], wx[min(xrow + 5u, last)],
        wx[min(xrow + 6u, last)], wx[min(xrow + 7u, last)]);
      for (var q = 0u; q < u.out_width; q++) {
        let g = wdy[yrow + q];
        acc_a += g * a;
        acc_b += g * bb;
        a = vec4f(a.yzw, bb.x);
        bb = vec4f(bb.yzw, wx[min(xrow + q + 8u, last)]);
      }
    }
  } else {
    let k = b - weight_blocks;
    for (var row = slice; row < rows; row += SPLIT) {
      let n = row / u.out_height;
      let p = row % u.out_height;
      let yrow = ((n * u.out_channels + k) * u.out_height + p) * u.out_width;
      for (var q = 0u; q < u.out_width; q++) {
        acc_a.x += wdy[yrow + q];
      }
    }
  }

  partial[2u * lane] = acc_a;
  partial[2u * lane + 1u] = acc_b;
  workgroupBarrier();
  if (block >= blocks) {
    return;
  }
  let first = lane - slice;
  let taps = select(1u, KERNEL, b < weight_blocks);
  for (var s = slice; s < taps; s += SPLIT) {
    var sum = 0.0;
    for (var l = 0u; l < SPLIT; l++) {
      sum += partial[2u * (first + l) + s / 4u][s % 4u];
    }
    if (b < weight_blocks) {
      wdw[b * KERNEL + s] = sum;
    } else {
      wdb[b - weight_blocks] = sum;
    }
  }
}
