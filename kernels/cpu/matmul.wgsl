// matmul: C = A B, the reference figure for the convolutions (bench/matmul_bench.ts): how
// fast this adapter multiplies matrices when loads are made as cheap as they can be here.
// Not used in training; its plain TypeScript reference is in tests/matmul_test.ts.
//
//   C[i,j] = sum_k A[i,k] * B[k,j]
//
// legend: i row of A and C (< M), j column of B and C (< N), k (< K); K and N are multiples
// of 4, so that a texel of A's or B's texture mirror (lib/cpu/texture.ts textureMirror) holds
// A[i, k..k+3] or B[k, j..j+3].
//
// One invocation = a block of C of 4*ROW_QUADS rows x 4*COL_QUADS columns, in mat4x4f
// accumulators c<a><b> (row quad a, column quad b; column r of c<a><b> is row 4a+r of the
// block). Per 4 values of k it fetches one texel per row (A[i, k..k+3]) and one per column
// quad and k (B[k+t, j..j+3]), and adds Bq * Aq: 16 multiply-adds per (texel, texel) pair,
// no workgroup memory (on llvmpipe workgroup memory and barriers cost more than they save).
//
// bindings: 0 A [M,K] (texture), 1 B [K,N] (texture), 2 C [M,N] (storage), 3 params

override WORKGROUP: u32 = 8;
// Row quads and column quads per invocation: 1, 2 or 4 each.
override ROW_QUADS: u32 = 4;
override COL_QUADS: u32 = 4;

struct Params {
  m: u32,
  n: u32,
  k: u32,
}

// Texels per row of a texture mirror (set from lib/cpu/texture.ts TEXTURE_ROW).
override TEXTURE_ROW: u32;

@group(0) @binding(0) var a_tex: texture_2d<f32>;
@group(0) @binding(1) var b_tex: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// Texel i of a texture mirror: floats 4i..4i+3 of its tensor.
fn texel(t: texture_2d<f32>, i: u32) -> vec4f {
  return textureLoad(t, vec2u(i % TEXTURE_ROW, i / TEXTURE_ROW), 0);
}

// Rows i..i+3 of A at k..k+3 (rows past M repeat the last one): column r is A[i+r, k..k+3].
fn a_quad(i: u32, k: u32) -> mat4x4f {
  let u = params;
  let last = u.m - 1u;
  let at = k / 4u;
  let stride = u.k / 4u;
  return mat4x4f(
    texel(a_tex, min(i, last) * stride + at),
    texel(a_tex, min(i + 1u, last) * stride + at),
    texel(a_tex, min(i + 2u, last) * stride + at),
    texel(a_tex, min(i + 3u, last) * stride + at),
  );
}

// B at rows k..k+3, columns j..j+3 (columns past N repeat the last quad): column t is
// B[k+t, j..j+3].
fn b_quad(k: u32, j: u32) -> mat4x4f {
  let u = params;
  let stride = u.n / 4u;
  let at = min(j, u.n - 4u) / 4u;
  return mat4x4f(
    texel(b_tex, k * stride + at),
    texel(b_tex, (k + 1u) * stride + at),
    texel(b_tex, (k + 2u) * stride + at),
    texel(b_tex, (k + 3u) * stride + at),
  );
}

// Stores rows i..i+3 x columns j..j+3 of C from block (column r = row i+r), where they exist.
fn store_c(block: mat4x4f, i: u32, j: u32) {
  let u = params;
  for (var r = 0u; r < 4u; r++) {
    if (i + r < u.m && j < u.n) {
      let at = (i + r) * u.n + j;
      c[at] = block[r].x;
      c[at + 1u] = block[r].y;
      c[at + 2u] = block[r].z;
      c[at + 3u] = block[r].w;
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = params;
  let id = gid.x + gid.y * groups.x * WORKGROUP;
  let col_blocks = (u.n + 4u * COL_QUADS - 1u) / (4u * COL_QUADS);
  let row_blocks = (u.m + 4u * ROW_QUADS - 1u) / (4u * ROW_QUADS);
  if (id >= row_blocks * col_blocks) {
    return;
  }
  let i0 = (id / col_blocks) * 4u * ROW_QUADS;
  let j0 = (id % col_blocks) * 4u * COL_QUADS;

  var c00 = mat4x4f();
  var c01 = mat4x4f();
  var c02 = mat4x4f();
  var c03 = mat4x4f();
  var c10 = mat4x4f();
  var c11 = mat4x4f();
  var c12 = mat4x4f();
  var c13 = mat4x4f();
  var c20 = mat4x4f();
  var c21 = mat4x4f();
  var c22 = mat4x4f();
  var c23 = mat4x4f();
  var c30 = mat4x4f();
  var c31 = mat4x4f();
  var c32 = mat4x4f();
  var c33 = mat4x4f();
  for (var k = 0u; k < u.k; k += 4u) {
    let a0 = a_quad(i0, k);
    let b0 = b_quad(k, j0);
    c00 += b0 * a0;
    var b1 = mat4x4f();
    var b2 = mat4x4f();
    var b3 = mat4x4f();
    if (COL_QUADS > 1u) {
      b1 = b_quad(k, j0 + 4u);
      c01 += b1 * a0;
    }
    if (COL_QUADS > 2u) {
      b2 = b_quad(k, j0 + 8u);
      b3 = b_quad(k, j0 + 12u);
      c02 += b2 * a0;
      c03 += b3 * a0;
    }
    if (ROW_QUADS > 1u) {
      let a1 = a_quad(i0 + 4u, k);
      c10 += b0 * a1;
      if (COL_QUADS > 1u) {
        c11 += b1 * a1;
      }
      if (COL_QUADS > 2u) {
        c12 += b2 * a1;
        c13 += b3 * a1;
      }
    }
    if (ROW_QUADS > 2u) {
      let a2 = a_quad(i0 + 8u, k);
      let a3 = a_quad(i0 + 12u, k);
      c20 += b0 * a2;
      c30 += b0 * a3;
      if (COL_QUADS > 1u) {
        c21 += b1 * a2;
        c31 += b1 * a3;
      }
      if (COL_QUADS > 2u) {
        c22 += b2 * a2;
        c23 += b3 * a2;
        c32 += b2 * a3;
        c33 += b3 * a3;
      }
    }
  }
  store_c(c00, i0, j0);
  if (COL_QUADS > 1u) {
    store_c(c01, i0, j0 + 4u);
  }
  if (COL_QUADS > 2u) {
    store_c(c02, i0, j0 + 8u);
    store_c(c03, i0, j0 + 12u);
  }
  if (ROW_QUADS > 1u) {
    store_c(c10, i0 + 4u, j0);
    if (COL_QUADS > 1u) {
      store_c(c11, i0 + 4u, j0 + 4u);
    }
    if (COL_QUADS > 2u) {
      store_c(c12, i0 + 4u, j0 + 8u);
      store_c(c13, i0 + 4u, j0 + 12u);
    }
  }
  if (ROW_QUADS > 2u) {
    store_c(c20, i0 + 8u, j0);
    store_c(c30, i0 + 12u, j0);
    if (COL_QUADS > 1u) {
      store_c(c21, i0 + 8u, j0 + 4u);
      store_c(c31, i0 + 12u, j0 + 4u);
    }
    if (COL_QUADS > 2u) {
      store_c(c22, i0 + 8u, j0 + 8u);
      store_c(c23, i0 + 8u, j0 + 12u);
      store_c(c32, i0 + 12u, j0 + 8u);
      store_c(c33, i0 + 12u, j0 + 12u);
    }
  }
}
