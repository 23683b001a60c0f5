// conv2d as three implicit matrix products, register-blocked: an invocation keeps a block of
// outputs in mat4x4f accumulators (rows: 4 channels, columns: 4 pixels) and adds outer
// products of a 4-vector of weights (or dy) and a 4-vector of pixels. The plain version,
// kernels/conv2d_naive.wgsl, is the reference these must match.
//
// forward: y[n,k,p,q] = b[k] + sum_c,r,s x[n,c,p*S+r-pad,q*S+s-pad] * w[k,c,r,s]
// (taps that fall in the zero padding contribute nothing).
//
// legend: n image, c input channel, k output channel, (h,w) input pixel, (p,q) output pixel,
// (r,s) kernel tap, R kernel size, S stride, pad padding; P = (H + 2 pad - R) / S + 1;
// RR = R*R, CRR = C*R*R, K4 = ceil(K/4), C4 = ceil(C/4). A "pixel" is a flat (n,p,q) or
// (n,h,w) index; blocks that run past the end of a dimension compute on clamped indices and
// store nothing there.
//
// Why the weights are staged: on llvmpipe (Mesa 22) a storage-buffer load is a loop over the
// SIMD lanes with a bounds check and a branch per lane, about 15 times dearer per float than
// a uniform-buffer load (a gather; 50 times for a vec4), and loads, not arithmetic, set the
// pace. stage_weights copies w once per forward into two layouts with 4 channels side by
// side, which forward and backward_input read as vec4 from a uniform binding when they fit in
// 64 KiB (from a storage binding otherwise: UNIFORM_WEIGHTS = false). Then only the x (or dy)
// loads are dear, each feeds 4 * QUADS channels, and those of pixels in the padding are
// skipped. On a GPU the weight reads are workgroup-uniform: its constant cache serves them.
// Accumulators and index vectors are written out by four (no local arrays or vectors indexed
// by a variable): GLSL lowers such indexing to chains of conditionals.

// bindings (per entry point, numbered from 0 in the order listed):
//   stage_weights:   w [K,C,R,R] (storage), wf [CRR, K4*4], wb [K*RR, C4*4] (views of the
//                    stage buffer, zero-filled once so that the padding channels read 0), params
//   forward:         x [N,C,H,W], wf (uniform, 64 KiB window), wf (storage), b [K],
//                    y [N,K,P,Q], params
//   backward_input:  dy [N,K,P,Q], wb (uniform, 64 KiB window), wb (storage), dx [N,C,H,W],
//                    params
//   backward_weight: x [N,C,H,W], dy [N,K,P,Q], dw [K,C,R,R], db [K], params

// Invocations per workgroup.
override WORKGROUP: u32 = 64;
// forward, backward_input: channel quads per invocation (1, 2, 4 or 8).
override QUADS: u32 = 8;
// forward, backward_input: read the staged weights from the uniform binding (they fit in it).
override UNIFORM_WEIGHTS: bool = true;
// backward_weight: channel quads and column quads per invocation (1, 2 or 4 each).
override K_QUADS: u32 = 4;
override COL_QUADS: u32 = 4;

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
}

const IOTA = vec4u(0u, 1u, 2u, 3u);

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

@group(0) @binding(0) var<storage, read> fx: array<f32>;
@group(0) @binding(1) var<uniform> fwu: array<vec4f, 4096>;
@group(0) @binding(2) var<storage, read> fws: array<vec4f>;
@group(0) @binding(3) var<storage, read> fb: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;
@group(0) @binding(5) var<uniform> fparams: Params;

// wf quad i: w[4i%K4.. +3, crs] for crs = i / K4.
fn forward_weights(i: u32) -> vec4f {
  if (UNIFORM_WEIGHTS) {
    return fwu[i];
  }
  return fws[i];
}

// x at the 4 indices, 0 where outside: the loads of pixels in the padding are skipped.
fn load_x(i: vec4u, inside: vec4<bool>) -> vec4f {
  var v = vec4f();
  if (inside.x) {
    v.x = fx[i.x];
  }
  if (inside.y) {
    v.y = fx[i.y];
  }
  if (inside.z) {
    v.z = fx[i.z];
  }
  if (inside.w) {
    v.w = fx[i.w];
  }
  return v;
}

// The bias of channels k..k+3, the starting value of every column of a block.
fn bias_block(k: u32, u: Params) -> mat4x4f {
  let kk = four(k, u.out_channels - 1u);
  let b = vec4f(fb[kk.x], fb[kk.y], fb[kk.z], fb[kk.w]);
  return mat4x4f(b, b, b, b);
}

// Stores v = y of channels k..k+3 at pixel m (if they exist).
fn store_y4(v: vec4f, k: u32, m: u32, u: Params) {
  let plane = u.out_height * u.out_width;
  if (m >= u.batch * plane) {
    return;
  }
  let out = (m / plane) * u.out_channels * plane + m % plane;
  if (k < u.out_channels) {
    fy[out + k * plane] = v.x;
  }
  if (k + 1u < u.out_channels) {
    fy[out + (k + 1u) * plane] = v.y;
  }
  if (k + 2u < u.out_channels) {
    fy[out + (k + 2u) * plane] = v.z;
  }
  if (k + 3u < u.out_channels) {
    fy[out + (k + 3u) * plane] = v.w;
  }
}

// Stores block[j] = y of channels k..k+3 at pixel m0 + j.
fn store_y(block: mat4x4f, k: u32, m0: u32, u: Params) {
  store_y4(block[0], k, m0, u);
  store_y4(block[1], k, m0 + 1u, u);
  store_y4(block[2], k, m0 + 2u, u);
  store_y4(block[3], k, m0 + 3u, u);
}

// forward: one invocation = y for 4*QUADS output channels (quads kq..kq+QUADS-1) x 4
// consecutive output pixels m0..m0+3. Loops over taps (r,s), then input channels c, so that
// the padding test of a pixel is made once per tap rather than once per (c,r,s).
// Accumulator y<j>: channel quad kq+j; the ones past QUADS are compiled out.
@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = fparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let plane = u.out_height * u.out_width;
  let pixels = u.batch * plane;
  let pixel_quads = (pixels + 3u) / 4u;
  let k4 = (u.out_channels + 3u) / 4u;
  if (i >= pixel_quads * ((k4 + QUADS - 1u) / QUADS)) {
    return;
  }
  let kq = (i / pixel_quads) * QUADS;
  let m0 = (i % pixel_quads) * 4u;
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

  // Per pixel: its image's first element, and its top-left tap (may lie in the padding).
  let m = four(m0, pixels - 1u);
  let xbase = (m / plane) * u.in_channels * in_plane;
  let h0 = vec4i((m % plane) / u.out_width * u.stride) - i32(u.padding);
  let w0 = vec4i((m % plane) % u.out_width * u.stride) - i32(u.padding);

  var y0 = bias_block(4u * kq, u);
  var y1 = bias_block(4u * kq + 4u, u);
  var y2 = bias_block(4u * kq + 8u, u);
  var y3 = bias_block(4u * kq + 12u, u);
  var y4 = bias_block(4u * kq + 16u, u);
  var y5 = bias_block(4u * kq + 20u, u);
  var y6 = bias_block(4u * kq + 24u, u);
  var y7 = bias_block(4u * kq + 28u, u);
  for (var r = 0u; r < u.kernel_size; r++) {
    for (var s = 0u; s < u.kernel_size; s++) {
      let h = h0 + i32(r);
      let w = w0 + i32(s);
      // u32 turns a negative coordinate into a large one: one test per side.
      let inside = (vec4u(h) < vec4u(u.height)) & (vec4u(w) < vec4u(u.width));
      var xi = xbase + vec4u(h) * u.width + vec4u(w);
      var wi = (r * u.kernel_size + s) * k4;
      for (var c = 0u; c < u.in_channels; c++) {
        let v = load_x(xi, inside);
        y0 += outer(forward_weights(wi + kc0), v);
        if (QUADS > 1u) {
          y1 += outer(forward_weights(wi + kc1), v);
        }
        if (QUADS > 2u) {
          y2 += outer(forward_weights(wi + kc2), v);
          y3 += outer(forward_weights(wi + kc3), v);
        }
        if (QUADS > 4u) {
          y4 += outer(forward_weights(wi + kc4), v);
          y5 += outer(forward_weights(wi + kc5), v);
          y6 += outer(forward_weights(wi + kc6), v);
          y7 += outer(forward_weights(wi + kc7), v);
        }
        xi += in_plane;
        wi += rr * k4;
      }
    }
  }
  store_y(y0, 4u * kq, m0, u);
  if (QUADS > 1u) {
    store_y(y1, 4u * kq + 4u, m0, u);
  }
  if (QUADS > 2u) {
    store_y(y2, 4u * kq + 8u, m0, u);
    store_y(y3, 4u * kq + 12u, m0, u);
  }
  if (QUADS > 4u) {
    store_y(y4, 4u * kq + 16u, m0, u);
    store_y(y5, 4u * kq + 20u, m0, u);
    store_y(y6, 4u * kq + 24u, m0, u);
    store_y(y7, 4u * kq + 28u, m0, u);
  }
}

@group(0) @binding(0) var<storage, read> idy: array<f32>;
@group(0) @binding(1) var<uniform> iwu: array<vec4f, 4096>;
@group(0) @binding(2) var<storage, read> iws: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> idx: array<f32>;
@group(0) @binding(4) var<uniform> iparams: Params;

// wb quad i: w[k, 4i%C4.. +3, r, s] for (k,r,s) = i / C4.
fn backward_weights(i: u32) -> vec4f {
  if (UNIFORM_WEIGHTS) {
    return iwu[i];
  }
  return iws[i];
}

// dy at the 4 indices, 0 where outside (the loads are skipped).
fn load_dy(i: vec4u, inside: vec4<bool>) -> vec4f {
  var v = vec4f();
  if (inside.x) {
    v.x = idy[i.x];
  }
  if (inside.y) {
    v.y = idy[i.y];
  }
  if (inside.z) {
    v.z = idy[i.z];
  }
  if (inside.w) {
    v.w = idy[i.w];
  }
  return v;
}

// Stores v = dx of channels c..c+3 at input pixel `at` = n*C*H*W + h*W + w (if it exists).
fn store_dx4(v: vec4f, c: u32, at: u32, exists: bool, u: Params) {
  let plane = u.height * u.width;
  if (!exists) {
    return;
  }
  if (c < u.in_channels) {
    idx[at + c * plane] = v.x;
  }
  if (c + 1u < u.in_channels) {
    idx[at + (c + 1u) * plane] = v.y;
  }
  if (c + 2u < u.in_channels) {
    idx[at + (c + 2u) * plane] = v.z;
  }
  if (c + 3u < u.in_channels) {
    idx[at + (c + 3u) * plane] = v.w;
  }
}

// Stores block[j] = dx of channels c..c+3 at the pixels at[j] that exist.
fn store_dx(block: mat4x4f, c: u32, at: vec4u, exists: vec4<bool>, u: Params) {
  store_dx4(block[0], c, at.x, exists.x, u);
  store_dx4(block[1], c, at.y, exists.y, u);
  store_dx4(block[2], c, at.z, exists.z, u);
  store_dx4(block[3], c, at.w, exists.w, u);
}

// backward_input: dx[n,c,h,w] = sum over k,r,s with h = p*S + r - pad and w = q*S + s - pad
// for an output pixel (p,q) of dy[n,k,p,q] * w[k,c,r,s].
// One invocation = dx for 4*QUADS input channels (quads cq..cq+QUADS-1) x 4 input pixels
// that share a phase (h mod S, w mod S): those are reached by the same taps r = r0, r0+S, ...
// (and s alike), so no tap is tried that cannot land on them. Pixels of phase (ph,pw) are
// numbered (n, hh, ww) with h = hh*S + ph, hh < ceil(H/S); the ones past H or W are not
// stored. Accumulator d<j>: channel quad cq+j.
@compute @workgroup_size(WORKGROUP)
fn backward_input(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = iparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let hs = (u.height + u.stride - 1u) / u.stride;
  let ws = (u.width + u.stride - 1u) / u.stride;
  let pixels = u.batch * hs * ws;
  let pixel_quads = (pixels + 3u) / 4u;
  let phases = u.stride * u.stride;
  let c4 = (u.in_channels + 3u) / 4u;
  if (i >= pixel_quads * phases * ((c4 + QUADS - 1u) / QUADS)) {
    return;
  }
  let m0 = (i % pixel_quads) * 4u;
  let phase = (i / pixel_quads) % phases;
  let cq = (i / (pixel_quads * phases)) * QUADS;
  let ph = phase / u.stride;
  let pw = phase % u.stride;
  // The first taps that land on this phase; tap r = r0 + a*S reads output row
  // p = hh + dp - a (and s = s0 + b*S reads column q = ww + dq - b).
  let r0 = (ph + u.padding) % u.stride;
  let s0 = (pw + u.padding) % u.stride;
  let dp = i32((ph + u.padding) / u.stride);
  let dq = i32((pw + u.padding) / u.stride);
  let out_plane = u.out_height * u.out_width;
  let rr = u.kernel_size * u.kernel_size;
  let cc0 = min(cq, c4 - 1u);
  let cc1 = min(cq + 1u, c4 - 1u);
  let cc2 = min(cq + 2u, c4 - 1u);
  let cc3 = min(cq + 3u, c4 - 1u);
  let cc4 = min(cq + 4u, c4 - 1u);
  let cc5 = min(cq + 5u, c4 - 1u);
  let cc6 = min(cq + 6u, c4 - 1u);
  let cc7 = min(cq + 7u, c4 - 1u);

  let m = four(m0, pixels - 1u);
  let n = m / (hs * ws);
  let hh = vec4i((m / ws) % hs);
  let ww = vec4i(m % ws);
  let ybase = n * u.out_channels * out_plane;

  var d0 = mat4x4f();
  var d1 = mat4x4f();
  var d2 = mat4x4f();
  var d3 = mat4x4f();
  var d4 = mat4x4f();
  var d5 = mat4x4f();
  var d6 = mat4x4f();
  var d7 = mat4x4f();
  for (var r = r0; r < u.kernel_size; r += u.stride) {
    for (var s = s0; s < u.kernel_size; s += u.stride) {
      let p = hh + dp - i32((r - r0) / u.stride);
      let q = ww + dq - i32((s - s0) / u.stride);
      let inside = (vec4u(p) < vec4u(u.out_height)) & (vec4u(q) < vec4u(u.out_width));
      var yi = ybase + vec4u(p) * u.out_width + vec4u(q);
      var wi = (r * u.kernel_size + s) * c4;
      for (var k = 0u; k < u.out_channels; k++) {
        let v = load_dy(yi, inside);
        d0 += outer(backward_weights(wi + cc0), v);
        if (QUADS > 1u) {
          d1 += outer(backward_weights(wi + cc1), v);
        }
        if (QUADS > 2u) {
          d2 += outer(backward_weights(wi + cc2), v);
          d3 += outer(backward_weights(wi + cc3), v);
        }
        if (QUADS > 4u) {
          d4 += outer(backward_weights(wi + cc4), v);
          d5 += outer(backward_weights(wi + cc5), v);
          d6 += outer(backward_weights(wi + cc6), v);
          d7 += outer(backward_weights(wi + cc7), v);
        }
        yi += out_plane;
        wi += rr * c4;
      }
    }
  }

  let h = vec4u(hh) * u.stride + ph;
  let w = vec4u(ww) * u.stride + pw;
  let exists = (vec4u(m0) + IOTA < vec4u(pixels)) & (h < vec4u(u.height)) &
    (w < vec4u(u.width));
  let at = n * u.in_channels * u.height * u.width + h * u.width + w;
  store_dx(d0, 4u * cq, at, exists, u);
  if (QUADS > 1u) {
    store_dx(d1, 4u * cq + 4u, at, exists, u);
  }
  if (QUADS > 2u) {
    store_dx(d2, 4u * cq + 8u, at, exists, u);
    store_dx(d3, 4u * cq + 12u, at, exists, u);
  }
  if (QUADS > 4u) {
    store_dx(d4, 4u * cq + 16u, at, exists, u);
    store_dx(d5, 4u * cq + 20u, at, exists, u);
    store_dx(d6, 4u * cq + 24u, at, exists, u);
    store_dx(d7, 4u * cq + 28u, at, exists, u);
  }
}

@group(0) @binding(0) var<storage, read> wx: array<f32>;
@group(0) @binding(1) var<storage, read> wdy: array<f32>;
@group(0) @binding(2) var<storage, read_write> wdw: array<f32>;
@group(0) @binding(3) var<storage, read_write> wdb: array<f32>;
@group(0) @binding(4) var<uniform> wparams: Params;

// x at the 4 indices, 0 where outside (the loads are skipped).
fn load_wx(i: vec4u, inside: vec4<bool>) -> vec4f {
  var v = vec4f();
  if (inside.x) {
    v.x = wx[i.x];
  }
  if (inside.y) {
    v.y = wx[i.y];
  }
  if (inside.z) {
    v.z = wx[i.z];
  }
  if (inside.w) {
    v.w = wx[i.w];
  }
  return v;
}

// dy of 4 channels at the same pixel: wdy[at + rows.x], ... (rows = channel offsets).
fn load_wdy(at: u32, rows: vec4u) -> vec4f {
  return vec4f(wdy[at + rows.x], wdy[at + rows.y], wdy[at + rows.z], wdy[at + rows.w]);
}

// Stores v = dw of channels k..k+3 at column col = flat (c,r,s) (if they exist).
fn store_dw4(v: vec4f, k: u32, col: u32, u: Params) {
  let crr = u.in_channels * u.kernel_size * u.kernel_size;
  if (col >= crr) {
    return;
  }
  if (k < u.out_channels) {
    wdw[k * crr + col] = v.x;
  }
  if (k + 1u < u.out_channels) {
    wdw[(k + 1u) * crr + col] = v.y;
  }
  if (k + 2u < u.out_channels) {
    wdw[(k + 2u) * crr + col] = v.z;
  }
  if (k + 3u < u.out_channels) {
    wdw[(k + 3u) * crr + col] = v.w;
  }
}

// Stores block[j] = dw of channels k..k+3 at column col0 + j.
fn store_dw(block: mat4x4f, k: u32, col0: u32, u: Params) {
  store_dw4(block[0], k, col0, u);
  store_dw4(block[1], k, col0 + 1u, u);
  store_dw4(block[2], k, col0 + 2u, u);
  store_dw4(block[3], k, col0 + 3u, u);
}

// Stores v = db of channels k..k+3 (if they exist).
fn store_db(v: vec4f, k: u32, u: Params) {
  if (k < u.out_channels) {
    wdb[k] = v.x;
  }
  if (k + 1u < u.out_channels) {
    wdb[k + 1u] = v.y;
  }
  if (k + 2u < u.out_channels) {
    wdb[k + 2u] = v.z;
  }
  if (k + 3u < u.out_channels) {
    wdb[k + 3u] = v.w;
  }
}

// backward_weight: dw[k,c,r,s] = sum_n,p,q dy[n,k,p,q] * x[n,c,p*S+r-pad,q*S+s-pad] and
// db[k] = sum_n,p,q dy[n,k,p,q]: the matrix product dY [K, NPQ] x X^T [NPQ, CRR].
// One invocation = dw for 4*K_QUADS output channels from k0 x 4*COL_QUADS columns from col0
// (flat (c,r,s)), summed over all (n,p,q) in order; the invocations of the first columns
// also sum db from the dy they load anyway. Both operands are big (activations), so every
// load here is a storage load: large blocks make fewer of them. The sum is not split across
// lanes: combining the parts needs workgroup memory and a barrier, which on llvmpipe cost
// more than they save (and take seconds to compile).
// Accumulator dw<a><g>: channel quad a x column quad g; the ones past K_QUADS or COL_QUADS
// are compiled out.
@compute @workgroup_size(WORKGROUP)
fn backward_weight(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = wparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let rr = u.kernel_size * u.kernel_size;
  let crr = u.in_channels * rr;
  let col_blocks = (crr + 4u * COL_QUADS - 1u) / (4u * COL_QUADS);
  if (i >= col_blocks * ((u.out_channels + 4u * K_QUADS - 1u) / (4u * K_QUADS))) {
    return;
  }
  let k0 = (i / col_blocks) * 4u * K_QUADS;
  let col0 = (i % col_blocks) * 4u * COL_QUADS;
  let in_plane = u.height * u.width;
  let out_plane = u.out_height * u.out_width;
  // Per channel quad: its rows' offsets in dy.
  let dyrow0 = four(k0, u.out_channels - 1u) * out_plane;
  let dyrow1 = four(k0 + 4u, u.out_channels - 1u) * out_plane;
  let dyrow2 = four(k0 + 8u, u.out_channels - 1u) * out_plane;
  let dyrow3 = four(k0 + 12u, u.out_channels - 1u) * out_plane;
  // Per column quad: the taps (r,s), and the offsets from a pixel's tap (0,0) within an image.
  let cols0 = four(col0, crr - 1u);
  let r0 = vec4i((cols0 % rr) / u.kernel_size);
  let s0 = vec4i((cols0 % rr) % u.kernel_size);
  let offset0 = vec4i((cols0 / rr) * in_plane) + r0 * i32(u.width) + s0;
  let cols1 = four(col0 + 4u, crr - 1u);
  let r1 = vec4i((cols1 % rr) / u.kernel_size);
  let s1 = vec4i((cols1 % rr) % u.kernel_size);
  let offset1 = vec4i((cols1 / rr) * in_plane) + r1 * i32(u.width) + s1;
  let cols2 = four(col0 + 8u, crr - 1u);
  let r2 = vec4i((cols2 % rr) / u.kernel_size);
  let s2 = vec4i((cols2 % rr) % u.kernel_size);
  let offset2 = vec4i((cols2 / rr) * in_plane) + r2 * i32(u.width) + s2;
  let cols3 = four(col0 + 12u, crr - 1u);
  let r3 = vec4i((cols3 % rr) / u.kernel_size);
  let s3 = vec4i((cols3 % rr) % u.kernel_size);
  let offset3 = vec4i((cols3 / rr) * in_plane) + r3 * i32(u.width) + s3;

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
  var db0 = vec4f();
  var db1 = vec4f();
  var db2 = vec4f();
  var db3 = vec4f();
  for (var n = 0u; n < u.batch; n++) {
    for (var p = 0u; p < u.out_height; p++) {
      let h = i32(p * u.stride) - i32(u.padding);
      let hin0 = vec4u(h + r0) < vec4u(u.height);
      let hin1 = vec4u(h + r1) < vec4u(u.height);
      let hin2 = vec4u(h + r2) < vec4u(u.height);
      let hin3 = vec4u(h + r3) < vec4u(u.height);
      let xrow = i32(n * u.in_channels * in_plane) + h * i32(u.width);
      var yi = n * u.out_channels * out_plane + p * u.out_width;
      for (var q = 0u; q < u.out_width; q++) {
        let w = i32(q * u.stride) - i32(u.padding);
        let dy0 = load_wdy(yi, dyrow0);
        let v0 = load_wx(vec4u(xrow + w + offset0), hin0 & (vec4u(w + s0) < vec4u(u.width)));
        var dy1 = vec4f();
        var dy2 = vec4f();
        var dy3 = vec4f();
        var v1 = vec4f();
        var v2 = vec4f();
        var v3 = vec4f();
        if (K_QUADS > 1u) {
          dy1 = load_wdy(yi, dyrow1);
        }
        if (K_QUADS > 2u) {
          dy2 = load_wdy(yi, dyrow2);
          dy3 = load_wdy(yi, dyrow3);
        }
        if (COL_QUADS > 1u) {
          v1 = load_wx(vec4u(xrow + w + offset1), hin1 & (vec4u(w + s1) < vec4u(u.width)));
        }
        if (COL_QUADS > 2u) {
          v2 = load_wx(vec4u(xrow + w + offset2), hin2 & (vec4u(w + s2) < vec4u(u.width)));
          v3 = load_wx(vec4u(xrow + w + offset3), hin3 & (vec4u(w + s3) < vec4u(u.width)));
        }
        dw00 += outer(dy0, v0);
        db0 += dy0;
        if (COL_QUADS > 1u) {
          dw01 += outer(dy0, v1);
        }
        if (COL_QUADS > 2u) {
          dw02 += outer(dy0, v2);
          dw03 += outer(dy0, v3);
        }
        if (K_QUADS > 1u) {
          dw10 += outer(dy1, v0);
          db1 += dy1;
        }
        if (K_QUADS > 1u && COL_QUADS > 1u) {
          dw11 += outer(dy1, v1);
        }
        if (K_QUADS > 1u && COL_QUADS > 2u) {
          dw12 += outer(dy1, v2);
          dw13 += outer(dy1, v3);
        }
        if (K_QUADS > 2u) {
          dw20 += outer(dy2, v0);
          dw30 += outer(dy3, v0);
          db2 += dy2;
          db3 += dy3;
        }
        if (K_QUADS > 2u && COL_QUADS > 1u) {
          dw21 += outer(dy2, v1);
          dw31 += outer(dy3, v1);
        }
        if (K_QUADS > 2u && COL_QUADS > 2u) {
          dw22 += outer(dy2, v2);
          dw23 += outer(dy2, v3);
          dw32 += outer(dy3, v2);
          dw33 += outer(dy3, v3);
        }
        yi += 1u;
      }
    }
  }

  store_dw(dw00, k0, col0, u);
  if (COL_QUADS > 1u) {
    store_dw(dw01, k0, col0 + 4u, u);
  }
  if (COL_QUADS > 2u) {
    store_dw(dw02, k0, col0 + 8u, u);
    store_dw(dw03, k0, col0 + 12u, u);
  }
  if (K_QUADS > 1u) {
    store_dw(dw10, k0 + 4u, col0, u);
  }
  if (K_QUADS > 1u && COL_QUADS > 1u) {
    store_dw(dw11, k0 + 4u, col0 + 4u, u);
  }
  if (K_QUADS > 1u && COL_QUADS > 2u) {
    store_dw(dw12, k0 + 4u, col0 + 8u, u);
    store_dw(dw13, k0 + 4u, col0 + 12u, u);
  }
  if (K_QUADS > 2u) {
    store_dw(dw20, k0 + 8u, col0, u);
    store_dw(dw30, k0 + 12u, col0, u);
  }
  if (K_QUADS > 2u && COL_QUADS > 1u) {
    store_dw(dw21, k0 + 8u, col0 + 4u, u);
    store_dw(dw31, k0 + 12u, col0 + 4u, u);
  }
  if (K_QUADS > 2u && COL_QUADS > 2u) {
    store_dw(dw22, k0 + 8u, col0 + 8u, u);
    store_dw(dw23, k0 + 8u, col0 + 12u, u);
    store_dw(dw32, k0 + 12u, col0 + 8u, u);
    store_dw(dw33, k0 + 12u, col0 + 12u, u);
  }
  if (col0 == 0u) {
    store_db(db0, k0, u);
    if (K_QUADS > 1u) {
      store_db(db1, k0 + 4u, u);
    }
    if (K_QUADS > 2u) {
      store_db(db2, k0 + 8u, u);
      store_db(db3, k0 + 12u, u);
    }
  }
}
