// conv2d as three implicit matrix products, register-blocked, over activations packed in
// groups of four images. The plain tier's kernels/conv2d.wgsl is the reference
// these must match.
//
// forward: y[n,k,p,q] = b[k] + sum_c,r,s x[n,c,p*S+r-pad,q*S+s-pad] * w[k,c,r,s]
// (taps that fall in the zero padding contribute nothing).
//
// legend: n image, g = n / 4 its group of four, c input channel, k output channel, (h,w)
// input pixel, (p,q) output pixel, (r,s) kernel tap, R kernel size, S stride, pad padding;
// P = (H + 2 pad - R) / S + 1; G = ceil(N / 4); RR = R*R, CRR = C*R*R, K4 = ceil(K/4),
// C4 = ceil(C/4).
//
// The packed layout ("N4"): x4 [G,C,H,W] of vec4, x4[g,c,h,w][j] = x[4g+j,c,h,w] (0 past N).
// pack writes it from the plain [N,C,H,W] tensor; the layer copies it into a texture and the
// convolutions read one texel per (g,c,h,w): the same pixel of four images at once.
//
// Why this shape, on llvmpipe (Mesa 22), where loads set the pace and arithmetic is nearly
// free: a storage-buffer load is a loop over the SIMD lanes with a bounds check each, ~4.6 ns
// a float; a texel fetch is one gather, ~2.5 ns for all four floats; a uniform-buffer vec4
// ~1.2 ns. So the weights are staged (stage_weights, once per forward) into layouts with 4
// channels side by side, read as vec4 from a uniform binding when they fit in 64 KiB (from a
// storage binding otherwise: UNIFORM_WEIGHTS = false), and every activation load is a texel
// whose four values are all used: 4 images x 4 channels = 16 multiply-adds per (texel,
// weight vec4) pair, in mat4x4f accumulators. On a GPU the weight reads are
// workgroup-uniform (its constant cache serves them) and textures have a cache of their own.
// Accumulators are written out by name (no local arrays indexed by a variable: GLSL lowers
// those to chains of conditionals); the ones a configuration does not use are compiled out.
//
// bindings (per entry point, numbered from 0 in the order listed):
//   stage_weights:   w [K,C,R,R] (storage), wf [CRR, K4*4], wb [K*RR, C4*4] (views of the
//                    stage buffer, zero-filled once so that the padding channels read 0), params
//   pack:            t [N,I] (texture mirror of a plain tensor, I floats an image),
//                    t4 [G,I] of vec4, pack params
//   forward,         x4 [G,C,H,W] (texture), wf (uniform, 64 KiB window), wf (storage),
//   forward_runs:    b [K], y [N,K,P,Q] (forward_runs: as vec4), params,
//                    y4 [G,K,P,Q] (storage texture)
//   backward_input:  dy4 [G,K,P,Q] (texture), wb (uniform, 64 KiB window), wb (storage),
//                    dx [N,C,H,W], params, dx4 [G,C,H,W] (storage texture)
//
// Handoffs (lib/cpu/handoff.ts): when the layer next to the conv is the wing's BatchNorm2d,
// x4 or dy4 is the texture that BatchNorm wrote packed (no pack), and forward or
// backward_input writes its output packed into y4 or dx4 for it (STORE_PACKED; the lanes of
// images past N hold whatever, BatchNorm masks them), and the plain y or dx only where
// someone reads it (STORE_PLAIN).
//   backward_weight: x4 [G,C,H,W] (texture), dy4 [G,K,P,Q] (texture),
//                    part [slices, K*CRR + K], params
//   reduce_weight:   part [slices, K*CRR + K], dw [K,C,R,R], db [K], params

// Invocations per workgroup.
override WORKGROUP: u32 = 64;
// forward: channel quads (4 channels) per invocation: 1, 2, 4 or 8; backward_input: 1, 2 or 4.
override QUADS: u32 = 8;
// forward: pixels per invocation (each for 4 images): 1, 2 or 4 (4 only with QUADS <= 2).
override PIXELS: u32 = 2;
// forward, backward_input: read the staged weights from the uniform binding (they fit in it).
override UNIFORM_WEIGHTS: bool = true;
// backward_weight: channel quads and column quads per invocation (1, 2 or 4 each).
override K_QUADS: u32 = 4;
override COL_QUADS: u32 = 4;
// forward, backward_input: write the output plain (y, dx) and/or packed (y4, dx4).
override STORE_PLAIN: bool = true;
override STORE_PACKED: bool = false;
// pack: every image is a whole number of texels (I % 4 == 0), so a texel of the plain
// tensor holds 4 values of one image and one invocation can transpose a 4x4 block.
override ALIGNED: bool = true;

struct Params {
  batch: u32,
  in_channels: u32,
  height: u32,
  width: u32,
  out_channels: u32,
  kernel_size: u32,
  stride: u32,
  padding: u32,
  out_height: u32,
  out_width: u32,
  // backward_weight: rows (g, p) of dy4 per slice (each slice sums a partial dw of its own).
  slice_rows: u32,
}

const IOTA = vec4u(0u, 1u, 2u, 3u);
// Texels per row of a texture mirror (set from lib/cpu/texture.ts TEXTURE_ROW).
override TEXTURE_ROW: u32;

// Where texel i of a texture mirror or a packed texture lies.
fn texel_at(i: u32) -> vec2u {
  return vec2u(i % TEXTURE_ROW, i / TEXTURE_ROW);
}

// Texel i of a texture mirror: floats 4i..4i+3 of its tensor.
fn texel(t: texture_2d<f32>, i: u32) -> vec4f {
  return textureLoad(t, texel_at(i), 0);
}


// outer(a, b)[j][i] = a[i] * b[j]: column j is a scaled by b[j].
fn outer(a: vec4f, b: vec4f) -> mat4x4f {
  return mat4x4f(a * b.x, a * b.y, a * b.z, a * b.w);
}

// first, first+1, first+2, first+3, clamped to last.
fn four(first: u32, last: u32) -> vec4u {
  return min(vec4u(first) + IOTA, vec4u(last));
}

@group(0) @binding(0) var<storage, read> sw: array<f32>;
@group(0) @binding(1) var<storage, read_write> swf: array<f32>;
@group(0) @binding(2) var<storage, read_write> swb: array<f32>;
@group(0) @binding(3) var<uniform> sparams: Params;

// stage_weights: one invocation = w[k,c,r,s], copied to wf[(c*RR + r*R + s)*K4*4 + k] (for
// forward: 4 output channels side by side) and wb[(k*RR + r*R + s)*C4*4 + c] (for
// backward_input: 4 input channels side by side).
@compute @workgroup_size(WORKGROUP)
fn stage_weights(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = sparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let rr = u.kernel_size * u.kernel_size;
  let crr = u.in_channels * rr;
  if (i >= u.out_channels * crr) {
    return;
  }
  let k = i / crr;
  let c = (i % crr) / rr;
  let rs = i % rr;
  swf[(c * rr + rs) * ((u.out_channels + 3u) / 4u) * 4u + k] = sw[i];
  swb[(k * rr + rs) * ((u.in_channels + 3u) / 4u) * 4u + c] = sw[i];
}

struct Pack {
  batch: u32,
  // Floats of one image (C*H*W).
  image: u32,
}

@group(0) @binding(0) var pt: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> pt4: array<vec4f>;
@group(0) @binding(2) var<uniform> pparams: Pack;

// Float i of the plain tensor behind pt.
fn plain_float(i: u32) -> f32 {
  return texel(pt, i / 4u)[i % 4u];
}

// Floats e0..e0+3 of image n (0 for an image past N or a position past the image): one
// texel when ALIGNED, else four single floats.
fn image_quad(n: u32, e0: u32, u: Pack) -> vec4f {
  if (n >= u.batch) {
    return vec4f();
  }
  let at = n * u.image + e0;
  if (ALIGNED) {
    return texel(pt, at / 4u);
  }
  let last = n * u.image + u.image - 1u;
  return vec4f(
    plain_float(at),
    plain_float(min(at + 1u, last)),
    plain_float(min(at + 2u, last)),
    plain_float(min(at + 3u, last)),
  );
}

// pack: t4[g,e][j] = t[4g+j, e] (0 for images past N). One invocation = 4 texels of t4:
// positions e0..e0+3 of group g, the transpose of the 4x4 block of (image, position).
@compute @workgroup_size(WORKGROUP)
fn pack(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = pparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let blocks = (u.image + 3u) / 4u;
  let g = i / blocks;
  if (g * 4u >= u.batch) {
    return;
  }
  let e0 = (i % blocks) * 4u;
  let n = vec4u(g * 4u) + IOTA;
  // rows[j] = floats e0..e0+3 of image 4g+j (0 past N).
  let rows = mat4x4f(
    image_quad(n.x, e0, u),
    image_quad(n.y, e0, u),
    image_quad(n.z, e0, u),
    image_quad(n.w, e0, u),
  );
  // Column e of the transpose = position e0+e of the four images.
  let cols = transpose(rows);
  let out = g * u.image + e0;
  pt4[out] = cols[0];
  if (e0 + 1u < u.image) {
    pt4[out + 1u] = cols[1];
  }
  if (e0 + 2u < u.image) {
    pt4[out + 2u] = cols[2];
  }
  if (e0 + 3u < u.image) {
    pt4[out + 3u] = cols[3];
  }
}

@group(0) @binding(0) var fx: texture_2d<f32>;
@group(0) @binding(1) var<uniform> fwu: array<vec4f, 4096>;
@group(0) @binding(2) var<storage, read> fws: array<vec4f>;
@group(0) @binding(3) var<storage, read> fb: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;
@group(0) @binding(5) var<uniform> fparams: Params;
@group(0) @binding(6) var fy4: texture_storage_2d<rgba32float, write>;
// forward_runs: y seen as vec4 (the same binding as fy, which forward_runs does not use).
@group(0) @binding(4) var<storage, read_write> fyv: array<vec4f>;

// wf quad i: w[4i%K4.. +3, crs] for crs = i / K4.
fn forward_weights(i: u32) -> vec4f {
  if (UNIFORM_WEIGHTS) {
    return fwu[i];
  }
  return fws[i];
}

// The texel of x4 at index i, 0 where the tap lies in the padding (the fetch is skipped).
fn load_x(i: u32, inside: bool) -> vec4f {
  if (inside) {
    return texel(fx, i);
  }
  return vec4f();
}

// The bias of channels k..k+3 in every column (image) of a block.
fn bias_block(k: u32, u: Params) -> mat4x4f {
  let kk = four(k, u.out_channels - 1u);
  let b = vec4f(fb[kk.x], fb[kk.y], fb[kk.z], fb[kk.w]);
  return mat4x4f(b, b, b, b);
}

// Stores v[i] = y[n, k+i, m] (m = p*Q + q) for the channels that exist, if image n does.
fn store_y4(v: vec4f, k: u32, n: u32, m: u32, u: Params) {
  if (n >= u.batch) {
    return;
  }
  let plane = u.out_height * u.out_width;
  let out = (n * u.out_channels + k) * plane + m;
  fy[out] = v.x;
  if (k + 1u < u.out_channels) {
    fy[out + plane] = v.y;
  }
  if (k + 2u < u.out_channels) {
    fy[out + 2u * plane] = v.z;
  }
  if (k + 3u < u.out_channels) {
    fy[out + 3u * plane] = v.w;
  }
}

// Stores block[j][i] = y[4g+j, k+i, m] for the images and channels that exist as texels
// (g, k+i, m) of y4 (row i of the block). (Written out by column: a loop here would index
// the matrix by a variable, see the header.)
fn store_y_packed(block: mat4x4f, k: u32, g: u32, m: u32, u: Params) {
  if (!STORE_PACKED || k >= u.out_channels) {
    return;
  }
  let plane = u.out_height * u.out_width;
  let at = (g * u.out_channels + k) * plane + m;
  let t = transpose(block);
  textureStore(fy4, texel_at(at), t[0]);
  if (k + 1u < u.out_channels) {
    textureStore(fy4, texel_at(at + plane), t[1]);
  }
  if (k + 2u < u.out_channels) {
    textureStore(fy4, texel_at(at + 2u * plane), t[2]);
  }
  if (k + 3u < u.out_channels) {
    textureStore(fy4, texel_at(at + 3u * plane), t[3]);
  }
}

// Stores block[j][i] = y[4g+j, k+i, m] for the images and channels that exist: packed
// (STORE_PACKED) and plain (STORE_PLAIN).
fn store_y(block: mat4x4f, k: u32, g: u32, m: u32, u: Params) {
  store_y_packed(block, k, g, m, u);
  if (!STORE_PLAIN || k >= u.out_channels) {
    return;
  }
  store_y4(block[0], k, g * 4u, m, u);
  store_y4(block[1], k, g * 4u + 1u, m, u);
  store_y4(block[2], k, g * 4u + 2u, m, u);
  store_y4(block[3], k, g * 4u + 3u, m, u);
}

// Stores run[i] = y[n, k+i, m0..m0+3] (4 consecutive pixels of a plane whose size is a
// multiple of 4: one vec4 of fyv) for the channels that exist, if image n does.
fn store_y_images(run: mat4x4f, k: u32, n: u32, m0: u32, u: Params) {
  if (n >= u.batch) {
    return;
  }
  let quads = u.out_height * u.out_width / 4u;
  let out = (n * u.out_channels + k) * quads + m0 / 4u;
  fyv[out] = run[0];
  if (k + 1u < u.out_channels) {
    fyv[out + quads] = run[1];
  }
  if (k + 2u < u.out_channels) {
    fyv[out + 2u * quads] = run[2];
  }
  if (k + 3u < u.out_channels) {
    fyv[out + 3u * quads] = run[3];
  }
}

// Stores the blocks of pixels m0..m0+3 (a, b, c, d; block[j][i] = y[4g+j, k+i, m]): plain
// (STORE_PLAIN) as one vec4 per (image, channel) instead of 4 floats, and packed.
fn store_y_run(a: mat4x4f, b: mat4x4f, c: mat4x4f, d: mat4x4f, k: u32, g: u32, m0: u32, u: Params) {
  store_y_packed(a, k, g, m0, u);
  store_y_packed(b, k, g, m0 + 1u, u);
  store_y_packed(c, k, g, m0 + 2u, u);
  store_y_packed(d, k, g, m0 + 3u, u);
  if (!STORE_PLAIN || k >= u.out_channels) {
    return;
  }
  store_y_images(transpose(mat4x4f(a[0], b[0], c[0], d[0])), k, g * 4u, m0, u);
  store_y_images(transpose(mat4x4f(a[1], b[1], c[1], d[1])), k, g * 4u + 1u, m0, u);
  store_y_images(transpose(mat4x4f(a[2], b[2], c[2], d[2])), k, g * 4u + 2u, m0, u);
  store_y_images(transpose(mat4x4f(a[3], b[3], c[3], d[3])), k, g * 4u + 3u, m0, u);
}

// Output pixel m's top-left tap (h, w) in the input (may lie in the padding).
fn corner(m: u32, u: Params) -> vec2i {
  let hw = vec2u(m / u.out_width, m % u.out_width) * u.stride;
  return vec2i(hw) - i32(u.padding);
}

// forward's accumulators: y<a><j> for pixel a, channel quad kq+j (block[j][i] = y[4g+j, k+i,
// m]). Pixels 2 and 3 only for QUADS <= 2.
struct ForwardSums {
  y00: mat4x4f,
  y01: mat4x4f,
  y02: mat4x4f,
  y03: mat4x4f,
  y04: mat4x4f,
  y05: mat4x4f,
  y06: mat4x4f,
  y07: mat4x4f,
  y10: mat4x4f,
  y11: mat4x4f,
  y12: mat4x4f,
  y13: mat4x4f,
  y14: mat4x4f,
  y15: mat4x4f,
  y16: mat4x4f,
  y17: mat4x4f,
  y20: mat4x4f,
  y21: mat4x4f,
  y30: mat4x4f,
  y31: mat4x4f,
}

// What forward invocation i computes: x its first pixel m0, y its group g of four images,
// z its first channel quad kq; x = P*Q past the last invocation.
fn forward_block(i: u32, u: Params) -> vec3u {
  let plane = u.out_height * u.out_width;
  let runs = (plane + PIXELS - 1u) / PIXELS;
  let group_count = (u.batch + 3u) / 4u;
  let k4 = (u.out_channels + 3u) / 4u;
  if (i >= runs * group_count * ((k4 + QUADS - 1u) / QUADS)) {
    return vec3u(plane, 0u, 0u);
  }
  return vec3u((i % runs) * PIXELS, (i / runs) % group_count, (i / (runs * group_count)) * QUADS);
}

// y of 4 images (group g) x PIXELS output pixels (m0, m0+1, ... in p*Q + q order) x 4*QUADS
// output channels (quads kq..kq+QUADS-1). Loops over taps (r,s), then input channels c, so
// that the padding test of a pixel is made once per tap. Per (r,s,c): one texel of x4 per
// pixel, one vec4 of weights per channel quad.
fn forward_sums(m0: u32, g: u32, kq: u32, u: Params) -> ForwardSums {
  let plane = u.out_height * u.out_width;
  let k4 = (u.out_channels + 3u) / 4u;
  // Pixels past the plane compute a copy of the last one and store nothing.
  let m1 = min(m0 + 1u, plane - 1u);
  let m2 = min(m0 + 2u, plane - 1u);
  let m3 = min(m0 + 3u, plane - 1u);
  var acc: ForwardSums;
  let in_plane = u.height * u.width;
  let rr = u.kernel_size * u.kernel_size;
  // Weight column of each channel quad (quads past K4 repeat the last one).
  let kc0 = min(kq, k4 - 1u);
  let kc1 = min(kq + 1u, k4 - 1u);
  let kc2 = min(kq + 2u, k4 - 1u);
  let kc3 = min(kq + 3u, k4 - 1u);
  let kc4 = min(kq + 4u, k4 - 1u);
  let kc5 = min(kq + 5u, k4 - 1u);
  let kc6 = min(kq + 6u, k4 - 1u);
  let kc7 = min(kq + 7u, k4 - 1u);
  let c0 = corner(m0, u);
  let c1 = corner(m1, u);
  let c2 = corner(m2, u);
  let c3 = corner(m3, u);
  let xbase = g * u.in_channels * in_plane;

  acc.y00 = bias_block(4u * kq, u);
  acc.y01 = bias_block(4u * kq + 4u, u);
  acc.y02 = bias_block(4u * kq + 8u, u);
  acc.y03 = bias_block(4u * kq + 12u, u);
  acc.y04 = bias_block(4u * kq + 16u, u);
  acc.y05 = bias_block(4u * kq + 20u, u);
  acc.y06 = bias_block(4u * kq + 24u, u);
  acc.y07 = bias_block(4u * kq + 28u, u);
  acc.y10 = acc.y00;
  acc.y11 = acc.y01;
  acc.y12 = acc.y02;
  acc.y13 = acc.y03;
  acc.y14 = acc.y04;
  acc.y15 = acc.y05;
  acc.y16 = acc.y06;
  acc.y17 = acc.y07;
  acc.y20 = acc.y00;
  acc.y21 = acc.y01;
  acc.y30 = acc.y00;
  acc.y31 = acc.y01;
  for (var r = 0u; r < u.kernel_size; r++) {
    for (var s = 0u; s < u.kernel_size; s++) {
      let rs = vec2i(vec2u(r, s));
      let t0 = c0 + rs;
      let t1 = c1 + rs;
      let t2 = c2 + rs;
      let t3 = c3 + rs;
      // u32 turns a negative coordinate into a large one: one test per side.
      let size = vec2u(u.height, u.width);
      let inside0 = all(vec2u(t0) < size);
      let inside1 = all(vec2u(t1) < size);
      let inside2 = all(vec2u(t2) < size);
      let inside3 = all(vec2u(t3) < size);
      var xi0 = xbase + u32(t0.x) * u.width + u32(t0.y);
      var xi1 = xbase + u32(t1.x) * u.width + u32(t1.y);
      var xi2 = xbase + u32(t2.x) * u.width + u32(t2.y);
      var xi3 = xbase + u32(t3.x) * u.width + u32(t3.y);
      var wi = (r * u.kernel_size + s) * k4;
      for (var c = 0u; c < u.in_channels; c++) {
        let v0 = load_x(xi0, inside0);
        let w_0 = forward_weights(wi + kc0);
        acc.y00 += outer(w_0, v0);
        var v1 = vec4f();
        var v2 = vec4f();
        var v3 = vec4f();
        if (PIXELS > 1u) {
          v1 = load_x(xi1, inside1);
          acc.y10 += outer(w_0, v1);
        }
        if (PIXELS > 2u) {
          v2 = load_x(xi2, inside2);
          v3 = load_x(xi3, inside3);
          acc.y20 += outer(w_0, v2);
          acc.y30 += outer(w_0, v3);
        }
        if (QUADS > 1u) {
          let w_1 = forward_weights(wi + kc1);
          acc.y01 += outer(w_1, v0);
          if (PIXELS > 1u) {
            acc.y11 += outer(w_1, v1);
          }
          if (PIXELS > 2u) {
            acc.y21 += outer(w_1, v2);
            acc.y31 += outer(w_1, v3);
          }
        }
        if (QUADS > 2u) {
          let w_2 = forward_weights(wi + kc2);
          let w_3 = forward_weights(wi + kc3);
          acc.y02 += outer(w_2, v0);
          acc.y03 += outer(w_3, v0);
          if (PIXELS > 1u) {
            acc.y12 += outer(w_2, v1);
            acc.y13 += outer(w_3, v1);
          }
        }
        if (QUADS > 4u) {
          let w_4 = forward_weights(wi + kc4);
          let w_5 = forward_weights(wi + kc5);
          let w_6 = forward_weights(wi + kc6);
          let w_7 = forward_weights(wi + kc7);
          acc.y04 += outer(w_4, v0);
          acc.y05 += outer(w_5, v0);
          acc.y06 += outer(w_6, v0);
          acc.y07 += outer(w_7, v0);
          if (PIXELS > 1u) {
            acc.y14 += outer(w_4, v1);
            acc.y15 += outer(w_5, v1);
            acc.y16 += outer(w_6, v1);
            acc.y17 += outer(w_7, v1);
          }
        }
        xi0 += in_plane;
        xi1 += in_plane;
        xi2 += in_plane;
        xi3 += in_plane;
        wi += rr * k4;
      }
    }
  }
  return acc;
}

// forward: one invocation = forward_sums of one block (forward_block), stored pixel by pixel.
@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = fparams;
  let block = forward_block(gid.x + gid.y * groups.x * WORKGROUP, u);
  let plane = u.out_height * u.out_width;
  let m0 = block.x;
  if (m0 >= plane) {
    return;
  }
  let g = block.y;
  let kq = block.z;
  let m1 = m0 + 1u;
  let m2 = m0 + 2u;
  let m3 = m0 + 3u;
  let acc = forward_sums(m0, g, kq, u);
  store_y(acc.y00, 4u * kq, g, m0, u);
  if (QUADS > 1u) {
    store_y(acc.y01, 4u * kq + 4u, g, m0, u);
  }
  if (QUADS > 2u) {
    store_y(acc.y02, 4u * kq + 8u, g, m0, u);
    store_y(acc.y03, 4u * kq + 12u, g, m0, u);
  }
  if (QUADS > 4u) {
    store_y(acc.y04, 4u * kq + 16u, g, m0, u);
    store_y(acc.y05, 4u * kq + 20u, g, m0, u);
    store_y(acc.y06, 4u * kq + 24u, g, m0, u);
    store_y(acc.y07, 4u * kq + 28u, g, m0, u);
  }
  if (PIXELS < 2u || m0 + 1u >= plane) {
    return;
  }
  store_y(acc.y10, 4u * kq, g, m1, u);
  if (QUADS > 1u) {
    store_y(acc.y11, 4u * kq + 4u, g, m1, u);
  }
  if (QUADS > 2u) {
    store_y(acc.y12, 4u * kq + 8u, g, m1, u);
    store_y(acc.y13, 4u * kq + 12u, g, m1, u);
  }
  if (QUADS > 4u) {
    store_y(acc.y14, 4u * kq + 16u, g, m1, u);
    store_y(acc.y15, 4u * kq + 20u, g, m1, u);
    store_y(acc.y16, 4u * kq + 24u, g, m1, u);
    store_y(acc.y17, 4u * kq + 28u, g, m1, u);
  }
  if (PIXELS < 4u || m0 + 2u >= plane) {
    return;
  }
  store_y(acc.y20, 4u * kq, g, m2, u);
  if (QUADS > 1u) {
    store_y(acc.y21, 4u * kq + 4u, g, m2, u);
  }
  if (m0 + 3u >= plane) {
    return;
  }
  store_y(acc.y30, 4u * kq, g, m3, u);
  if (QUADS > 1u) {
    store_y(acc.y31, 4u * kq + 4u, g, m3, u);
  }
}

// forward_runs: forward for PIXELS = 4, QUADS <= 2 and an output plane P*Q that is a
// multiple of 4, so that an invocation's 4 pixels are consecutive in every (image, channel)
// of the plain y: each stored as one vec4 (fyv) instead of 4 floats.
@compute @workgroup_size(WORKGROUP)
fn forward_runs(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = fparams;
  let block = forward_block(gid.x + gid.y * groups.x * WORKGROUP, u);
  if (block.x >= u.out_height * u.out_width) {
    return;
  }
  let acc = forward_sums(block.x, block.y, block.z, u);
  store_y_run(acc.y00, acc.y10, acc.y20, acc.y30, 4u * block.z, block.y, block.x, u);
  if (QUADS > 1u) {
    store_y_run(acc.y01, acc.y11, acc.y21, acc.y31, 4u * block.z + 4u, block.y, block.x, u);
  }
}

@group(0) @binding(0) var idy: texture_2d<f32>;
@group(0) @binding(1) var<uniform> iwu: array<vec4f, 4096>;
@group(0) @binding(2) var<storage, read> iws: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> idx: array<f32>;
@group(0) @binding(4) var<uniform> iparams: Params;
@group(0) @binding(5) var idx4: texture_storage_2d<rgba32float, write>;

// wb quad i: w[k, 4i%C4.. +3, r, s] for (k,r,s) = i / C4.
fn backward_weights(i: u32) -> vec4f {
  if (UNIFORM_WEIGHTS) {
    return iwu[i];
  }
  return iws[i];
}

// Stores v[i] = dx[n, c+i, at] (at = h*W + w) for the channels that exist, if image n does.
fn store_dx4(v: vec4f, c: u32, n: u32, at: u32, u: Params) {
  if (n >= u.batch) {
    return;
  }
  let plane = u.height * u.width;
  let out = (n * u.in_channels + c) * plane + at;
  idx[out] = v.x;
  if (c + 1u < u.in_channels) {
    idx[out + plane] = v.y;
  }
  if (c + 2u < u.in_channels) {
    idx[out + 2u * plane] = v.z;
  }
  if (c + 3u < u.in_channels) {
    idx[out + 3u * plane] = v.w;
  }
}

// Stores block[j][i] = dx[4g+j, c+i, at] for the images and channels that exist: plain, and
// packed as texels (g, c+i, at) of dx4 (row i of the block).
fn store_dx(block: mat4x4f, c: u32, g: u32, at: u32, u: Params) {
  if (c >= u.in_channels) {
    return;
  }
  if (STORE_PACKED) {
    let plane = u.height * u.width;
    let first = (g * u.in_channels + c) * plane + at;
    let t = transpose(block);
    textureStore(idx4, texel_at(first), t[0]);
    if (c + 1u < u.in_channels) {
      textureStore(idx4, texel_at(first + plane), t[1]);
    }
    if (c + 2u < u.in_channels) {
      textureStore(idx4, texel_at(first + 2u * plane), t[2]);
    }
    if (c + 3u < u.in_channels) {
      textureStore(idx4, texel_at(first + 3u * plane), t[3]);
    }
  }
  if (!STORE_PLAIN) {
    return;
  }
  store_dx4(block[0], c, g * 4u, at, u);
  store_dx4(block[1], c, g * 4u + 1u, at, u);
  store_dx4(block[2], c, g * 4u + 2u, at, u);
  store_dx4(block[3], c, g * 4u + 3u, at, u);
}

// backward_input: dx[n,c,h,w] = sum over k,r,s with h = p*S + r - pad and w = q*S + s - pad
// for an output pixel (p,q) of dy[n,k,p,q] * w[k,c,r,s].
// One workgroup = one input pixel (h,w) x 4*QUADS input channels (quads cq..cq+QUADS-1) x
// WORKGROUP groups of four images, one group an invocation. The pixel is the workgroup's, so
// the loops over the taps are the same in all the lanes of llvmpipe's SIMD vector and visit
// exactly the taps (r,s) that reach the pixel from an output pixel that exists:
// r = (h+pad) mod S, +S, ... up to R, skipping p >= P. On the seed's conv2 (13x13 input,
// R = 4, S = 2), 2.4 taps a pixel where a pixel a lane (the pixels of a SIMD vector differ)
// made every lane run the union of their taps, 4, half of them on zeros: ~1.5x faster here.
// (Replacing its uniform weight loads by a constant changed nothing: they do not set its
// pace. Two pixels a workgroup, (h,w) and (h,w+S), sharing their weight loads, were 0.89x
// on LeNet-5's C3.) Per (tap, k): one texel of dy4 (4 images), QUADS vec4 of weights,
// 16*QUADS multiply-adds. The sum runs over r, s, k in that order, as the
// per-pixel version's did: the same floats. Accumulator d<j>: channel quad cq+j.
@compute @workgroup_size(WORKGROUP)
fn backward_input(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) lane: u32,
) {
  let u = iparams;
  let wg = wid.x + wid.y * groups.x;
  let plane = u.height * u.width;
  let group_count = (u.batch + 3u) / 4u;
  let group_blocks = (group_count + WORKGROUP - 1u) / WORKGROUP;
  let c4 = (u.in_channels + 3u) / 4u;
  if (wg >= plane * group_blocks * ((c4 + QUADS - 1u) / QUADS)) {
    return;
  }
  let at = wg % plane;
  let cq = (wg / (plane * group_blocks)) * QUADS;
  // Invocations past the last group compute a copy of it and store nothing.
  let lane_group = (wg / plane) % group_blocks * WORKGROUP + lane;
  let g = min(lane_group, group_count - 1u);
  let out_plane = u.out_height * u.out_width;
  let rr = u.kernel_size * u.kernel_size;
  // Weight column of each channel quad (quads past C4 repeat the last one).
  let cc0 = min(cq, c4 - 1u);
  let cc1 = min(cq + 1u, c4 - 1u);
  let cc2 = min(cq + 2u, c4 - 1u);
  let cc3 = min(cq + 3u, c4 - 1u);
  let hp = at / u.width + u.padding;
  let wp = at % u.width + u.padding;

  var d0 = mat4x4f();
  var d1 = mat4x4f();
  var d2 = mat4x4f();
  var d3 = mat4x4f();
  // Tap r reads output row p = (h + pad - r) / S: r runs over the taps with p >= 0 and
  // skips those with p >= P (the same for s and q).
  for (var r = hp % u.stride; r < u.kernel_size && r <= hp; r += u.stride) {
    let p = (hp - r) / u.stride;
    if (p >= u.out_height) {
      continue;
    }
    for (var s = wp % u.stride; s < u.kernel_size && s <= wp; s += u.stride) {
      let q = (wp - s) / u.stride;
      if (q >= u.out_width) {
        continue;
      }
      var yi = g * u.out_channels * out_plane + p * u.out_width + q;
      var wi = (r * u.kernel_size + s) * c4;
      for (var k = 0u; k < u.out_channels; k++) {
        let v = texel(idy, yi);
        d0 += outer(backward_weights(wi + cc0), v);
        if (QUADS > 1u) {
          d1 += outer(backward_weights(wi + cc1), v);
        }
        if (QUADS > 2u) {
          d2 += outer(backward_weights(wi + cc2), v);
          d3 += outer(backward_weights(wi + cc3), v);
        }
        yi += out_plane;
        wi += rr * c4;
      }
    }
  }

  if (lane_group >= group_count) {
    return;
  }
  store_dx(d0, 4u * cq, g, at, u);
  if (QUADS > 1u) {
    store_dx(d1, 4u * cq + 4u, g, at, u);
  }
  if (QUADS > 2u) {
    store_dx(d2, 4u * cq + 8u, g, at, u);
    store_dx(d3, 4u * cq + 12u, g, at, u);
  }
}

@group(0) @binding(0) var wx: texture_2d<f32>;
@group(0) @binding(1) var wdy: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> wpart: array<f32>;
@group(0) @binding(3) var<uniform> wparams: Params;

// The texel of x4 at index i, 0 where the tap lies in the padding (the fetch is skipped).
fn load_wx(i: i32, inside: bool) -> vec4f {
  if (inside) {
    return texel(wx, u32(i));
  }
  return vec4f();
}

// The texels of dy4 of 4 channels at one (g,p,q): the columns of a 4 images x 4 channels
// block. `at` is channel 0's texel, `rows` the channel offsets.
fn load_wdy(at: u32, rows: vec4u) -> mat4x4f {
  return mat4x4f(
    texel(wdy, at + rows.x),
    texel(wdy, at + rows.y),
    texel(wdy, at + rows.z),
    texel(wdy, at + rows.w),
  );
}

// The texels of x4 of 4 columns (c,r,s) for a pixel whose tap (0,0) is at (h, w), relative
// to `at` = g*C*H*W + h*W + w: the columns of a 4 images x 4 columns block.
fn load_wx4(at: i32, h: i32, w: i32, cols: ColumnQuad, u: Params) -> mat4x4f {
  let hi = vec4u(vec4i(h) + cols.r) < vec4u(u.height);
  let wi = vec4u(vec4i(w) + cols.s) < vec4u(u.width);
  let inside = hi & wi;
  let i = vec4i(at) + cols.offset;
  return mat4x4f(
    load_wx(i.x, inside.x),
    load_wx(i.y, inside.y),
    load_wx(i.z, inside.z),
    load_wx(i.w, inside.w),
  );
}

// 4 consecutive columns (flat (c,r,s)) of dw: their taps and their offsets from a pixel's
// tap (0,0) within a group's image.
struct ColumnQuad {
  r: vec4i,
  s: vec4i,
  offset: vec4i,
}

fn column_quad(col0: u32, u: Params) -> ColumnQuad {
  let rr = u.kernel_size * u.kernel_size;
  let cols = four(col0, u.in_channels * rr - 1u);
  let r = vec4i((cols % rr) / u.kernel_size);
  let s = vec4i((cols % rr) % u.kernel_size);
  let offset = vec4i((cols / rr) * u.height * u.width) + r * i32(u.width) + s;
  return ColumnQuad(r, s, offset);
}

// Stores v[i] at wpart[at + i * stride] for the i < count.
fn store_part4(v: vec4f, at: u32, stride: u32, count: u32) {
  if (count == 0u) {
    return;
  }
  wpart[at] = v.x;
  if (count > 1u) {
    wpart[at + stride] = v.y;
  }
  if (count > 2u) {
    wpart[at + 2u * stride] = v.z;
  }
  if (count > 3u) {
    wpart[at + 3u * stride] = v.w;
  }
}

// Stores block[j][i] = the partial dw of channel k+i at column col0+j (if they exist) in the
// slice's row of part, which starts at `row`.
fn store_dw(block: mat4x4f, k: u32, col0: u32, row: u32, u: Params) {
  let crr = u.in_channels * u.kernel_size * u.kernel_size;
  if (k >= u.out_channels || col0 >= crr) {
    return;
  }
  let channels = u.out_channels - k;
  let at = row + k * crr + col0;
  store_part4(block[0], at, crr, channels);
  if (col0 + 1u < crr) {
    store_part4(block[1], at + 1u, crr, channels);
  }
  if (col0 + 2u < crr) {
    store_part4(block[2], at + 2u, crr, channels);
  }
  if (col0 + 3u < crr) {
    store_part4(block[3], at + 3u, crr, channels);
  }
}

// Stores v = the partial db of channels k..k+3 (if they exist), after the slice's dw.
fn store_db(v: vec4f, k: u32, row: u32, u: Params) {
  if (k < u.out_channels) {
    let at = row + u.out_channels * u.in_channels * u.kernel_size * u.kernel_size + k;
    store_part4(v, at, 1u, u.out_channels - k);
  }
}

// backward_weight: dw[k,c,r,s] = sum_n,p,q dy[n,k,p,q] * x[n,c,p*S+r-pad,q*S+s-pad] and
// db[k] = sum_n,p,q dy[n,k,p,q]: the matrix product dY [K, NPQ] x X^T [NPQ, CRR].
// One invocation = the partial dw of one slice (slice_rows rows (g,p) of dy4) for
// 4*K_QUADS output channels from k0 x 4*COL_QUADS columns from col0 (flat (c,r,s)), summed
// over the slice's (g,p,q) in order; the invocations of the first columns also sum db from
// the dy they load anyway. Per (g,p,q): one texel of dy4 per channel and one of x4 per column,
// each 4 images; a 4x4 block gains transpose(DY) * X, the sum over the 4 images.
// reduce_weight then adds the slices' parts in order. Slices give a small dw (conv1's is one
// block) enough invocations to keep every core busy; the parts are not combined in workgroup
// memory, because on llvmpipe its loads and barriers cost more than a second dispatch.
// Accumulator dw<a><b>: channel quad a x column quad b.
@compute @workgroup_size(WORKGROUP)
fn backward_weight(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = wparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let crr = u.in_channels * u.kernel_size * u.kernel_size;
  let col_blocks = (crr + 4u * COL_QUADS - 1u) / (4u * COL_QUADS);
  let blocks = col_blocks * ((u.out_channels + 4u * K_QUADS - 1u) / (4u * K_QUADS));
  let rows = (u.batch + 3u) / 4u * u.out_height;
  let slices = (rows + u.slice_rows - 1u) / u.slice_rows;
  if (i >= blocks * slices) {
    return;
  }
  let block = i % blocks;
  let slice = i / blocks;
  let k0 = (block / col_blocks) * 4u * K_QUADS;
  let col0 = (block % col_blocks) * 4u * COL_QUADS;
  let row = slice * (u.out_channels * crr + u.out_channels);
  let in_plane = u.height * u.width;
  let out_plane = u.out_height * u.out_width;
  // Per channel quad: its offsets in a group of dy4.
  let dyrow0 = four(k0, u.out_channels - 1u) * out_plane;
  let dyrow1 = four(k0 + 4u, u.out_channels - 1u) * out_plane;
  let dyrow2 = four(k0 + 8u, u.out_channels - 1u) * out_plane;
  let dyrow3 = four(k0 + 12u, u.out_channels - 1u) * out_plane;
  let cols0 = column_quad(col0, u);
  let cols1 = column_quad(col0 + 4u, u);
  let cols2 = column_quad(col0 + 8u, u);
  let cols3 = column_quad(col0 + 12u, u);

  var dw00 = mat4x4f();
  var dw01 = mat4x4f();
  var dw02 = mat4x4f();
  var dw03 = mat4x4f();
  var dw10 = mat4x4f();
  var dw11 = mat4x4f();
  var dw12 = mat4x4f();
  var dw13 = mat4x4f();
  var dw20 = mat4x4f();
  var dw21 = mat4x4f();
  var dw22 = mat4x4f();
  var dw23 = mat4x4f();
  var dw30 = mat4x4f();
  var dw31 = mat4x4f();
  var dw32 = mat4x4f();
  var dw33 = mat4x4f();
  var db = mat4x4f();
  let ones = vec4f(1.0);
  let row_end = min(rows, (slice + 1u) * u.slice_rows);
  for (var gp = slice * u.slice_rows; gp < row_end; gp++) {
    let g = gp / u.out_height;
    let p = gp % u.out_height;
    let h = i32(p * u.stride) - i32(u.padding);
    let xrow = i32(g * u.in_channels * in_plane) + h * i32(u.width);
    var yi = g * u.out_channels * out_plane + p * u.out_width;
    for (var q = 0u; q < u.out_width; q++) {
      let w = i32(q * u.stride) - i32(u.padding);
      let dy0 = load_wdy(yi, dyrow0);
      let x0 = load_wx4(xrow + w, h, w, cols0, u);
      var dy1 = mat4x4f();
      var dy2 = mat4x4f();
      var dy3 = mat4x4f();
      var x1 = mat4x4f();
      var x2 = mat4x4f();
      var x3 = mat4x4f();
      if (K_QUADS > 1u) {
        dy1 = load_wdy(yi, dyrow1);
      }
      if (K_QUADS > 2u) {
        dy2 = load_wdy(yi, dyrow2);
        dy3 = load_wdy(yi, dyrow3);
      }
      if (COL_QUADS > 1u) {
        x1 = load_wx4(xrow + w, h, w, cols1, u);
      }
      if (COL_QUADS > 2u) {
        x2 = load_wx4(xrow + w, h, w, cols2, u);
        x3 = load_wx4(xrow + w, h, w, cols3, u);
      }
      let t0 = transpose(dy0);
      dw00 += t0 * x0;
      if (col0 == 0u) {
        db[0] += t0 * ones;
      }
      if (COL_QUADS > 1u) {
        dw01 += t0 * x1;
      }
      if (COL_QUADS > 2u) {
        dw02 += t0 * x2;
        dw03 += t0 * x3;
      }
      if (K_QUADS > 1u) {
        let t1 = transpose(dy1);
        dw10 += t1 * x0;
        if (col0 == 0u) {
          db[1] += t1 * ones;
        }
        if (COL_QUADS > 1u) {
          dw11 += t1 * x1;
        }
        if (COL_QUADS > 2u) {
          dw12 += t1 * x2;
          dw13 += t1 * x3;
        }
      }
      if (K_QUADS > 2u) {
        let t2 = transpose(dy2);
        let t3 = transpose(dy3);
        dw20 += t2 * x0;
        dw30 += t3 * x0;
        if (col0 == 0u) {
          db[2] += t2 * ones;
          db[3] += t3 * ones;
        }
        if (COL_QUADS > 1u) {
          dw21 += t2 * x1;
          dw31 += t3 * x1;
        }
        if (COL_QUADS > 2u) {
          dw22 += t2 * x2;
          dw23 += t2 * x3;
          dw32 += t3 * x2;
          dw33 += t3 * x3;
        }
      }
      yi += 1u;
    }
  }

  store_dw(dw00, k0, col0, row, u);
  if (COL_QUADS > 1u) {
    store_dw(dw01, k0, col0 + 4u, row, u);
  }
  if (COL_QUADS > 2u) {
    store_dw(dw02, k0, col0 + 8u, row, u);
    store_dw(dw03, k0, col0 + 12u, row, u);
  }
  if (K_QUADS > 1u) {
    store_dw(dw10, k0 + 4u, col0, row, u);
  }
  if (K_QUADS > 1u && COL_QUADS > 1u) {
    store_dw(dw11, k0 + 4u, col0 + 4u, row, u);
  }
  if (K_QUADS > 1u && COL_QUADS > 2u) {
    store_dw(dw12, k0 + 4u, col0 + 8u, row, u);
    store_dw(dw13, k0 + 4u, col0 + 12u, row, u);
  }
  if (K_QUADS > 2u) {
    store_dw(dw20, k0 + 8u, col0, row, u);
    store_dw(dw30, k0 + 12u, col0, row, u);
  }
  if (K_QUADS > 2u && COL_QUADS > 1u) {
    store_dw(dw21, k0 + 8u, col0 + 4u, row, u);
    store_dw(dw31, k0 + 12u, col0 + 4u, row, u);
  }
  if (K_QUADS > 2u && COL_QUADS > 2u) {
    store_dw(dw22, k0 + 8u, col0 + 8u, row, u);
    store_dw(dw23, k0 + 8u, col0 + 12u, row, u);
    store_dw(dw32, k0 + 12u, col0 + 8u, row, u);
    store_dw(dw33, k0 + 12u, col0 + 12u, row, u);
  }
  if (col0 == 0u) {
    store_db(db[0], k0, row, u);
    if (K_QUADS > 1u) {
      store_db(db[1], k0 + 4u, row, u);
    }
    if (K_QUADS > 2u) {
      store_db(db[2], k0 + 8u, row, u);
      store_db(db[3], k0 + 12u, row, u);
    }
  }
}

@group(0) @binding(0) var<storage, read> rpart: array<f32>;
@group(0) @binding(1) var<storage, read_write> rdw: array<f32>;
@group(0) @binding(2) var<storage, read_write> rdb: array<f32>;
@group(0) @binding(3) var<uniform> rparams: Params;

// reduce_weight: dw (then db) = the sum of the slices' parts, slice 0 first. One invocation =
// one element of [dw, db].
@compute @workgroup_size(WORKGROUP)
fn reduce_weight(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = rparams;
  let e = gid.x + gid.y * groups.x * WORKGROUP;
  let weights = u.out_channels * u.in_channels * u.kernel_size * u.kernel_size;
  let row = weights + u.out_channels;
  if (e >= row) {
    return;
  }
  let rows = (u.batch + 3u) / 4u * u.out_height;
  let slices = (rows + u.slice_rows - 1u) / u.slice_rows;
  var sum = 0.0;
  for (var slice = 0u; slice < slices; slice++) {
    sum += rpart[slice * row + e];
  }
  if (e < weights) {
    rdw[e] = sum;
  } else {
    rdb[e - weights] = sum;
  }
}
