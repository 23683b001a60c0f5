// Linear in the CPU wing: three register-blocked matrix products over texture mirrors. The
// plain tier's kernels/linear.wgsl is the reference these must match. The forward applies
// the activation a after the Linear fused in (ACTIVATION; the formulas are copies of
// kernels/activation.wgsl's and relu.wgsl's, on vec4s); the backward gets g, the gradient
// before the activation, from the activation's own backward kernel (lib/cpu/linear.ts says
// why), and dy when there is none.
//
// forward:  y[n,o]  = a(b[o] + sum_i x[n,i] * w[o,i])
// backward (restates the forward above; overwrites, no accumulation):
//   dx[n,i] = sum_o g[n,o] * w[o,i]
//   dw[o,i] = sum_n g[n,o] * x[n,i]
//   db[o]   = sum_n g[n,o]                  (from the dw blocks of the first columns)
//
// legend: n image (< N), i input feature (< IN), o output feature (< OUT), k the index a
// product sums over (i, o or n). Every product is out[row, col] = sum_k L[row, k] R[k, col]:
// forward rows n, columns o, k = i; dx rows n, columns i, k = o; dw rows o, columns i, k = n.
//
// Why this shape, on llvmpipe (see kernels/cpu/conv2d.wgsl): loads set the pace. x, w and dy
// are read from texture mirrors of the plain row-major tensors (lib/cpu/texture.ts): a texel
// holds 4 consecutive floats of a row, M[row, c..c+3]. Four texels of L and four of R make two
// mat4x4f, whose product is 64 multiply-adds; an invocation holds a block of ROWS x COLS such
// quads of its output (4*ROWS rows x 4*COLS columns) in mat4x4f accumulators c<a><b>, written
// out by name (c<a><b> column r = out[row0 + 4a + r, col0 + 4b .. col0 + 4b + 3], a row
// segment, stored as one vec4 where the row is texel-aligned). Workgroups are small (8
// invocations, one SIMD vector), so that even a small product spreads over every core. No
// workgroup memory, no integer division but by powers of two in the loops.
//
// A quad read is 0 where its row or a column lies outside its matrix, so that the sums over
// k stop at the edge and no float past a tensor's end is used. When a matrix's row length
// is not a multiple of 4 (X_ALIGNED: IN % 4 == 0; DY_ALIGNED: OUT % 4 == 0), a row segment
// straddles two texels and is shifted out of both.
//
// bindings:
//   forward:  0 x [N,IN] (texture), 1 w [OUT,IN] (texture), 2 b [OUT], 3 y [N,OUT] (as vec4),
//             4 params
//   backward: 0 x (texture), 1 w (texture), 2 g [N,OUT] (texture), 3 dw [OUT,IN] (as vec4),
//             4 db [OUT], 5 params, 6 dx [N,IN] (as vec4; last, so that a stand-in can take
//             its place when there is no dx: then dx_groups is 0)
// The backward's workgroups are split in two ranges: dx_groups for dx, then the dw blocks.

// Invocations per workgroup.
override WORKGROUP: u32 = 8;
// Row quads and column quads (1, 2 or 4 each) of an invocation's block, per product.
override FORWARD_ROWS: u32 = 2;
override FORWARD_COLS: u32 = 4;
override DX_ROWS: u32 = 2;
override DX_COLS: u32 = 4;
override DW_ROWS: u32 = 2;
override DW_COLS: u32 = 4;
// Rows of x and w (IN floats), of dy and y (OUT floats) start on a texel.
override X_ALIGNED: bool = true;
override DY_ALIGNED: bool = true;
// Texels per row of a texture mirror (set from lib/cpu/texture.ts TEXTURE_ROW).
override TEXTURE_ROW: u32;
// The fused activation: 0 none, 1 tanh, 2 sigmoid, 3 relu.
override ACTIVATION: u32 = 0;

struct Params {
  batch: u32,
  in_features: u32,
  out_features: u32,
  // backward: workgroups of the dx range (0 without a dx).
  dx_groups: u32,
}

const IOTA = vec4u(0u, 1u, 2u, 3u);
// Which product a block belongs to (a constant at every call: the compiler folds the tests).
const FORWARD = 0u;
const DX = 1u;
const DW = 2u;

@group(0) @binding(0) var x_tex: texture_2d<f32>;
@group(0) @binding(1) var w_tex: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(4) var<uniform> params: Params;

@group(0) @binding(2) var dy_tex: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;
@group(0) @binding(5) var<uniform> backward_params: Params;
@group(0) @binding(6) var<storage, read_write> dx: array<vec4f>;

// As kernels/activation.wgsl's tanh_of, on 4 values.
fn tanh_of(v: vec4f) -> vec4f {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

// The fused activation of 4 outputs, as its own forward kernel computes each.
fn activate(v: vec4f) -> vec4f {
  switch ACTIVATION {
    case 1u: {
      return tanh_of(v);
    }
    case 2u: {
      return 1.0 / (1.0 + exp(-v));
    }
    case 3u: {
      return max(v, vec4f(0.0));
    }
    default: {
      return v;
    }
  }
}

// Texel i of a texture mirror: floats 4i..4i+3 of its tensor.
fn texel(t: texture_2d<f32>, i: u32) -> vec4f {
  return textureLoad(t, vec2u(i % TEXTURE_ROW, i / TEXTURE_ROW), 0);
}

// M[row, col..col+3] of the [rows, cols] matrix mirrored in t, 0 outside it.
fn quad(t: texture_2d<f32>, row: u32, col: u32, shape: vec2u, aligned: bool) -> vec4f {
  let last = (shape.x * shape.y - 1u) / 4u;
  let f = min(row, shape.x - 1u) * shape.y + col;
  let a = texel(t, min(f / 4u, last));
  var v = a;
  if (!aligned) {
    let next = texel(t, min(f / 4u + 1u, last));
    let s = f % 4u;
    v = select(v, vec4f(a.yzw, next.x), s == 1u);
    v = select(v, vec4f(a.zw, next.xy), s == 2u);
    v = select(v, vec4f(a.w, next.xyz), s == 3u);
  }
  let inside = (vec4u(col) + IOTA < vec4u(shape.y)) & vec4<bool>(row < shape.x);
  return select(vec4f(), v, inside);
}

// Rows row..row+3 of M, k..k+3: column r is M[row + r, k..k+3].
fn rows4(t: texture_2d<f32>, row: u32, k: u32, shape: vec2u, aligned: bool) -> mat4x4f {
  return mat4x4f(
    quad(t, row, k, shape, aligned),
    quad(t, row + 1u, k, shape, aligned),
    quad(t, row + 2u, k, shape, aligned),
    quad(t, row + 3u, k, shape, aligned),
  );
}

// L at rows row..row+3, k..k+3, as p with p[r][t] = L[row + r, k + t].
// forward L = x; dx L = g; dw L[o,n] = g[n,o].
fn left(kind: u32, t: texture_2d<f32>, k: u32, row: u32, u: Params) -> mat4x4f {
  let g_shape = vec2u(u.batch, u.out_features);
  if (kind == FORWARD) {
    return rows4(t, row, k, vec2u(u.batch, u.in_features), X_ALIGNED);
  }
  if (kind == DX) {
    return rows4(t, row, k, g_shape, DY_ALIGNED);
  }
  return transpose(rows4(t, k, row, g_shape, DY_ALIGNED));
}

// R at k..k+3, columns col..col+3, as q with q[t][j] = R[k + t, col + j].
// forward R[i,o] = w[o,i]; dx R = w; dw R = x.
fn right(kind: u32, t: texture_2d<f32>, k: u32, col: u32, u: Params) -> mat4x4f {
  let w_shape = vec2u(u.out_features, u.in_features);
  if (kind == FORWARD) {
    return transpose(rows4(t, col, k, w_shape, X_ALIGNED));
  }
  if (kind == DX) {
    return rows4(t, k, col, w_shape, X_ALIGNED);
  }
  return rows4(t, k, col, vec2u(u.batch, u.in_features), X_ALIGNED);
}

// One invocation's accumulators (see the header), and dw's column sums of L (db).
struct Block {
  c00: mat4x4f,
  c01: mat4x4f,
  c02: mat4x4f,
  c03: mat4x4f,
  c10: mat4x4f,
  c11: mat4x4f,
  c12: mat4x4f,
  c13: mat4x4f,
  c20: mat4x4f,
  c21: mat4x4f,
  c22: mat4x4f,
  c23: mat4x4f,
  c30: mat4x4f,
  c31: mat4x4f,
  c32: mat4x4f,
  c33: mat4x4f,
  s0: vec4f,
  s1: vec4f,
  s2: vec4f,
  s3: vec4f,
}

// Adds sum_k L[row0.., k] R[k, col0..] over k < depth to `start`, a block of rows x cols
// quads: (q p)[r] = sum_t q[t] * p[r][t] = the row segment out[row + r, col..col+3].
fn product(
  kind: u32,
  lt: texture_2d<f32>,
  rt: texture_2d<f32>,
  at: vec2u,
  depth: u32,
  quads: vec2u,
  start: Block,
  u: Params,
) -> Block {
  var c = start;
  let row0 = at.x;
  let col0 = at.y;
  for (var k = 0u; k < depth; k += 4u) {
    let p0 = left(kind, lt, k, row0, u);
    let q0 = right(kind, rt, k, col0, u);
    c.c00 += q0 * p0;
    if (kind == DW) {
      c.s0 += vec4f(1.0) * p0;
    }
    var q1 = mat4x4f();
    var q2 = mat4x4f();
    var q3 = mat4x4f();
    if (quads.y > 1u) {
      q1 = right(kind, rt, k, col0 + 4u, u);
      c.c01 += q1 * p0;
    }
    if (quads.y > 2u) {
      q2 = right(kind, rt, k, col0 + 8u, u);
      q3 = right(kind, rt, k, col0 + 12u, u);
      c.c02 += q2 * p0;
      c.c03 += q3 * p0;
    }
    if (quads.x > 1u) {
      let p1 = left(kind, lt, k, row0 + 4u, u);
      c.c10 += q0 * p1;
      if (kind == DW) {
        c.s1 += vec4f(1.0) * p1;
      }
      if (quads.y > 1u) {
        c.c11 += q1 * p1;
      }
      if (quads.y > 2u) {
        c.c12 += q2 * p1;
        c.c13 += q3 * p1;
      }
    }
    if (quads.x > 2u) {
      let p2 = left(kind, lt, k, row0 + 8u, u);
      let p3 = left(kind, lt, k, row0 + 12u, u);
      c.c20 += q0 * p2;
      c.c30 += q0 * p3;
      if (kind == DW) {
        c.s2 += vec4f(1.0) * p2;
        c.s3 += vec4f(1.0) * p3;
      }
      if (quads.y > 1u) {
        c.c21 += q1 * p2;
        c.c31 += q1 * p3;
      }
      if (quads.y > 2u) {
        c.c22 += q2 * p2;
        c.c23 += q3 * p2;
        c.c32 += q2 * p3;
        c.c33 += q3 * p3;
      }
    }
  }
  return c;
}

// Where an invocation's block starts (row0, col0) in an output of `shape` (rows, cols),
// cut in blocks of `quads` (row quads, column quads); x = rows past the end when id has none.
fn block_at(id: u32, shape: vec2u, quads: vec2u) -> vec2u {
  let size = 4u * quads;
  let row_blocks = (shape.x + size.x - 1u) / size.x;
  let col_blocks = (shape.y + size.y - 1u) / size.y;
  if (id >= row_blocks * col_blocks) {
    return vec2u(shape.x, 0u);
  }
  return vec2u(id % row_blocks, id / row_blocks) * size;
}

// Where row segment out[row, col..col+3] goes in an output of `cols` columns: its first
// float, and which of its floats exist (none for a row past `rows`).
struct Segment {
  first: u32,
  take: vec4<bool>,
}

fn segment(row: u32, col: u32, shape: vec2u) -> Segment {
  let take = (vec4u(col) + IOTA < vec4u(shape.y)) & vec4<bool>(row < shape.x);
  return Segment(row * shape.y + col, take);
}

// The float f + j of a vec4 output as (texel, lane).
fn float_at(f: u32, j: u32) -> vec2u {
  return vec2u((f + j) / 4u, (f + j) % 4u);
}

// y: a row segment, one vec4 store where rows are whole texels (then a segment lies all
// inside y or all outside), else float by float.
fn store_y(v: vec4f, row: u32, col: u32) {
  let s = segment(row, col, vec2u(params.batch, params.out_features));
  if (DY_ALIGNED) {
    if (all(s.take)) {
      y[s.first / 4u] = v;
    }
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    if (s.take[j]) {
      let at = float_at(s.first, j);
      // A lane by name: an indexed store could be a read-modify-write of the whole texel.
      switch (at.y) {
        case 0u: {
          y[at.x].x = v[j];
        }
        case 1u: {
          y[at.x].y = v[j];
        }
        case 2u: {
          y[at.x].z = v[j];
        }
        default: {
          y[at.x].w = v[j];
        }
      }
    }
  }
}

fn store_dx(v: vec4f, row: u32, col: u32) {
  let s = segment(row, col, vec2u(backward_params.batch, backward_params.in_features));
  if (X_ALIGNED) {
    if (all(s.take)) {
      dx[s.first / 4u] = v;
    }
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    if (s.take[j]) {
      let at = float_at(s.first, j);
      switch (at.y) {
        case 0u: {
          dx[at.x].x = v[j];
        }
        case 1u: {
          dx[at.x].y = v[j];
        }
        case 2u: {
          dx[at.x].z = v[j];
        }
        default: {
          dx[at.x].w = v[j];
        }
      }
    }
  }
}

fn store_dw(v: vec4f, row: u32, col: u32) {
  let s = segment(row, col, vec2u(backward_params.out_features, backward_params.in_features));
  if (X_ALIGNED) {
    if (all(s.take)) {
      dw[s.first / 4u] = v;
    }
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    if (s.take[j]) {
      let at = float_at(s.first, j);
      switch (at.y) {
        case 0u: {
          dw[at.x].x = v[j];
        }
        case 1u: {
          dw[at.x].y = v[j];
        }
        case 2u: {
          dw[at.x].z = v[j];
        }
        default: {
          dw[at.x].w = v[j];
        }
      }
    }
  }
}

// The rows of accumulator c, at rows row..row+3 and columns col..col+3, into y.
fn store_y4(c: mat4x4f, row: u32, col: u32) {
  for (var r = 0u; r < 4u; r++) {
    store_y(activate(c[r]), row + r, col);
  }
}

// The rows of accumulator c into dx or dw (by kind).
fn store_d4(kind: u32, c: mat4x4f, row: u32, col: u32) {
  for (var r = 0u; r < 4u; r++) {
    if (kind == DX) {
      store_dx(c[r], row + r, col);
    } else {
      store_dw(c[r], row + r, col);
    }
  }
}

// Every accumulator of a forward block of `quads` at `at` (row0, col0), into y. (The
// forward's stores and the backward's are apart: an entry point may use only its own
// bindings, even in a branch that its kind folds away.)
fn store_forward(c: Block, at: vec2u, quads: vec2u) {
  store_y4(c.c00, at.x, at.y);
  if (quads.y > 1u) {
    store_y4(c.c01, at.x, at.y + 4u);
  }
  if (quads.y > 2u) {
    store_y4(c.c02, at.x, at.y + 8u);
    store_y4(c.c03, at.x, at.y + 12u);
  }
  if (quads.x > 1u) {
    store_y4(c.c10, at.x + 4u, at.y);
    if (quads.y > 1u) {
      store_y4(c.c11, at.x + 4u, at.y + 4u);
    }
    if (quads.y > 2u) {
      store_y4(c.c12, at.x + 4u, at.y + 8u);
      store_y4(c.c13, at.x + 4u, at.y + 12u);
    }
  }
  if (quads.x > 2u) {
    store_y4(c.c20, at.x + 8u, at.y);
    store_y4(c.c30, at.x + 12u, at.y);
    if (quads.y > 1u) {
      store_y4(c.c21, at.x + 8u, at.y + 4u);
      store_y4(c.c31, at.x + 12u, at.y + 4u);
    }
    if (quads.y > 2u) {
      store_y4(c.c22, at.x + 8u, at.y + 8u);
      store_y4(c.c23, at.x + 8u, at.y + 12u);
      store_y4(c.c32, at.x + 12u, at.y + 8u);
      store_y4(c.c33, at.x + 12u, at.y + 12u);
    }
  }
}

// Every accumulator of a dx or dw block, into dx or dw.
fn store_backward(kind: u32, c: Block, at: vec2u, quads: vec2u) {
  store_d4(kind, c.c00, at.x, at.y);
  if (quads.y > 1u) {
    store_d4(kind, c.c01, at.x, at.y + 4u);
  }
  if (quads.y > 2u) {
    store_d4(kind, c.c02, at.x, at.y + 8u);
    store_d4(kind, c.c03, at.x, at.y + 12u);
  }
  if (quads.x > 1u) {
    store_d4(kind, c.c10, at.x + 4u, at.y);
    if (quads.y > 1u) {
      store_d4(kind, c.c11, at.x + 4u, at.y + 4u);
    }
    if (quads.y > 2u) {
      store_d4(kind, c.c12, at.x + 4u, at.y + 8u);
      store_d4(kind, c.c13, at.x + 4u, at.y + 12u);
    }
  }
  if (quads.x > 2u) {
    store_d4(kind, c.c20, at.x + 8u, at.y);
    store_d4(kind, c.c30, at.x + 12u, at.y);
    if (quads.y > 1u) {
      store_d4(kind, c.c21, at.x + 8u, at.y + 4u);
      store_d4(kind, c.c31, at.x + 12u, at.y + 4u);
    }
    if (quads.y > 2u) {
      store_d4(kind, c.c22, at.x + 8u, at.y + 8u);
      store_d4(kind, c.c23, at.x + 8u, at.y + 12u);
      store_d4(kind, c.c32, at.x + 12u, at.y + 8u);
      store_d4(kind, c.c33, at.x + 12u, at.y + 12u);
    }
  }
}

// db[o..o+3] where those outputs exist.
fn store_db(v: vec4f, o: u32) {
  for (var j = 0u; j < 4u; j++) {
    if (o + j < backward_params.out_features) {
      db[o + j] = v[j];
    }
  }
}

// The bias of outputs o..o+3 (0 past OUT) in every column of an accumulator.
fn bias_block(o: u32) -> mat4x4f {
  let last = params.out_features - 1u;
  let oo = min(vec4u(o) + IOTA, vec4u(last));
  let v = select(vec4f(), vec4f(b[oo.x], b[oo.y], b[oo.z], b[oo.w]), vec4u(o) + IOTA <= vec4u(last));
  return mat4x4f(v, v, v, v);
}

// forward: one invocation = y at rows n0.. (4*FORWARD_ROWS) x columns o0.. (4*FORWARD_COLS).
@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = params;
  let id = gid.x + gid.y * groups.x * WORKGROUP;
  let quads = vec2u(FORWARD_ROWS, FORWARD_COLS);
  let at = block_at(id, vec2u(u.batch, u.out_features), quads);
  if (at.x >= u.batch) {
    return;
  }
  var start: Block;
  start.c00 = bias_block(at.y);
  start.c01 = bias_block(at.y + 4u);
  start.c02 = bias_block(at.y + 8u);
  start.c03 = bias_block(at.y + 12u);
  start.c10 = start.c00;
  start.c11 = start.c01;
  start.c12 = start.c02;
  start.c13 = start.c03;
  start.c20 = start.c00;
  start.c21 = start.c01;
  start.c22 = start.c02;
  start.c23 = start.c03;
  start.c30 = start.c00;
  start.c31 = start.c01;
  start.c32 = start.c02;
  start.c33 = start.c03;
  let c = product(FORWARD, x_tex, w_tex, at, u.in_features, quads, start, u);
  store_forward(c, at, quads);
}

// backward: workgroups [0, dx_groups) compute dx blocks (rows n, columns i), the rest dw
// blocks (rows o, columns i); the dw blocks of columns 0.. also write db of their rows.
@compute @workgroup_size(WORKGROUP)
fn backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let u = backward_params;
  let w = wid.x + wid.y * groups.x;
  var start: Block;
  if (w < u.dx_groups) {
    let quads = vec2u(DX_ROWS, DX_COLS);
    let at = block_at(w * WORKGROUP + lane, vec2u(u.batch, u.in_features), quads);
    if (at.x >= u.batch) {
      return;
    }
    let c = product(DX, dy_tex, w_tex, at, u.out_features, quads, start, u);
    store_backward(DX, c, at, quads);
    return;
  }
  let quads = vec2u(DW_ROWS, DW_COLS);
  let id = (w - u.dx_groups) * WORKGROUP + lane;
  let at = block_at(id, vec2u(u.out_features, u.in_features), quads);
  if (at.x >= u.out_features) {
    return;
  }
  let c = product(DW, dy_tex, x_tex, at, u.batch, quads, start, u);
  store_backward(DW, c, at, quads);
  if (at.y == 0u) {
    store_db(c.s0, at.x);
    if (DW_ROWS > 1u) {
      store_db(c.s1, at.x + 4u);
    }
    if (DW_ROWS > 2u) {
      store_db(c.s2, at.x + 8u);
      store_db(c.s3, at.x + 12u);
    }
  }
}
