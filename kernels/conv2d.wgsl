// conv2d as three implicit matrix products, register-blocked: each invocation keeps an 8x8
// block of outputs in four mat4x4f accumulators (rows: 4 channels, columns: 4 pixels) and
// adds one outer product of two 8-vectors per step. No workgroup memory, except in
// backward_weight, which splits its long reduction across the lanes of a workgroup and adds
// the parts up in a fixed order (no atomics: bit-reproducible run to run).
// The plain version, kernels/conv2d_naive.wgsl, is the reference these must match.
//
// forward: y[n,k,p,q] = b[k] + sum_c,r,s x[n,c,p*S+r-pad,q*S+s-pad] * w[k,c,r,s]
// (taps that fall in the zero padding contribute nothing).
//
// legend: n image, c input channel, k output channel, (h,w) input pixel, (p,q) output pixel,
// (r,s) kernel tap, R kernel size, S stride, pad padding; P = (H + 2 pad - R) / S + 1.
// A "pixel" below is a flat (n,p,q) or (n,h,w) index. Blocks that run past the end of a
// dimension compute on clamped indices and store nothing there.
// Accumulators and index vectors go by four, all written out (no arrays indexed in loops),
// so that they stay in registers on every compiler.
//
// bindings (per entry point, numbered from 0 in the order listed):
//   forward:         x [N,C,H,W], w [K,C,R,R], b [K], y [N,K,P,Q], params
//   backward_input:  dy [N,K,P,Q], w [K,C,R,R], dx [N,C,H,W], params
//   backward_weight: x [N,C,H,W], dy [N,K,P,Q], dw [K,C,R,R], db [K], params

// Invocations per workgroup.
override WORKGROUP: u32 = 64;
// backward_weight: lanes that share one 8x8 block of (dw, db) and split its reduction over
// the (n,p) rows of dy; a power of two that divides WORKGROUP.
override SPLIT: u32 = 8;

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

// first, first+1, first+2, first+3, clamped to last: rows past the end repeat the last one.
fn four(first: u32, last: u32) -> vec4u {
  return min(vec4u(first) + IOTA, vec4u(last));
}

@group(0) @binding(0) var<storage, read> fx: array<f32>;
@group(0) @binding(1) var<storage, read> fw: array<f32>;
@group(0) @binding(2) var<storage, read> fb: array<f32>;
@group(0) @binding(3) var<storage, read_write> fy: array<f32>;
@group(0) @binding(4) var<uniform> fparams: Params;

// Stores block[j][i] = y for channel k0+i of pixel m0+j (those that exist).
fn store_y(block: mat4x4f, k0: u32, m0: u32, u: Params) {
  let plane = u.out_height * u.out_width;
  for (var j = 0u; j < 4u; j++) {
    let m = m0 + j;
    if (m >= u.batch * plane) {
      return;
    }
    let column = block[j];
    let out = (m / plane) * u.out_channels * plane + m % plane;
    for (var i = 0u; i < 4u && k0 + i < u.out_channels; i++) {
      fy[out + (k0 + i) * plane] = column[i];
    }
  }
}

// forward: one invocation = y for 8 output channels k0..k0+7 x 8 consecutive output pixels
// m0..m0+7 (flat (n,p,q)). Loops over taps (r,s), then input channels c, so that the
// padding test of a pixel is made once per tap rather than once per (c,r,s).
// Accumulators y<k half><pixel half>: lo/hi = channels k0..k0+3 / k0+4..k0+7,
// a/b = pixels m0..m0+3 / m0+4..m0+7.
@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = fparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let plane = u.out_height * u.out_width;
  let pixels = u.batch * plane;
  let pixel_blocks = (pixels + 7u) / 8u;
  if (i >= pixel_blocks * ((u.out_channels + 7u) / 8u)) {
    return;
  }
  let k0 = (i / pixel_blocks) * 8u;
  let m0 = (i % pixel_blocks) * 8u;
  let in_plane = u.height * u.width;
  let rr = u.kernel_size * u.kernel_size;
  let crr = u.in_channels * rr;
  let klo = four(k0, u.out_channels - 1u);
  let khi = four(k0 + 4u, u.out_channels - 1u);
  let wlo = klo * crr;
  let whi = khi * crr;

  // Per pixel: its image's first element, and its top-left tap (may lie in the padding).
  let ma = four(m0, pixels - 1u);
  let mb = four(m0 + 4u, pixels - 1u);
  let xbase_a = (ma / plane) * u.in_channels * in_plane;
  let xbase_b = (mb / plane) * u.in_channels * in_plane;
  let h0a = vec4i((ma % plane) / u.out_width * u.stride) - i32(u.padding);
  let h0b = vec4i((mb % plane) / u.out_width * u.stride) - i32(u.padding);
  let w0a = vec4i((ma % plane) % u.out_width * u.stride) - i32(u.padding);
  let w0b = vec4i((mb % plane) % u.out_width * u.stride) - i32(u.padding);

  // The bias starts every column.
  let blo = vec4f(fb[klo.x], fb[klo.y], fb[klo.z], fb[klo.w]);
  let bhi = vec4f(fb[khi.x], fb[khi.y], fb[khi.z], fb[khi.w]);
  var ylo_a = mat4x4f(blo, blo, blo, blo);
  var ylo_b = ylo_a;
  var yhi_a = mat4x4f(bhi, bhi, bhi, bhi);
  var yhi_b = yhi_a;
  for (var r = 0u; r < u.kernel_size; r++) {
    for (var s = 0u; s < u.kernel_size; s++) {
      let ha = h0a + i32(r);
      let hb = h0b + i32(r);
      let wa = w0a + i32(s);
      let wb = w0b + i32(s);
      // u32 turns a negative coordinate into a large one: one test per side.
      let in_a = (vec4u(ha) < vec4u(u.height)) & (vec4u(wa) < vec4u(u.width));
      let in_b = (vec4u(hb) < vec4u(u.height)) & (vec4u(wb) < vec4u(u.width));
      var xa = select(vec4u(0u), xbase_a + vec4u(ha) * u.width + vec4u(wa), in_a);
      var xb = select(vec4u(0u), xbase_b + vec4u(hb) * u.width + vec4u(wb), in_b);
      var wi = r * u.kernel_size + s;
      for (var c = 0u; c < u.in_channels; c++) {
        let lo = vec4f(fw[wlo.x + wi], fw[wlo.y + wi], fw[wlo.z + wi], fw[wlo.w + wi]);
        let hi = vec4f(fw[whi.x + wi], fw[whi.y + wi], fw[whi.z + wi], fw[whi.w + wi]);
        let va = select(vec4f(0.0), vec4f(fx[xa.x], fx[xa.y], fx[xa.z], fx[xa.w]), in_a);
        let vb = select(vec4f(0.0), vec4f(fx[xb.x], fx[xb.y], fx[xb.z], fx[xb.w]), in_b);
        ylo_a += outer(lo, va);
        ylo_b += outer(lo, vb);
        yhi_a += outer(hi, va);
        yhi_b += outer(hi, vb);
        xa += in_plane;
        xb += in_plane;
        wi += rr;
      }
    }
  }
  store_y(ylo_a, k0, m0, u);
  store_y(ylo_b, k0, m0 + 4u, u);
  store_y(yhi_a, k0 + 4u, m0, u);
  store_y(yhi_b, k0 + 4u, m0 + 4u, u);
}

@group(0) @binding(0) var<storage, read> idy: array<f32>;
@group(0) @binding(1) var<storage, read> iw: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<f32>;
@group(0) @binding(3) var<uniform> iparams: Params;

// Stores block[j][i] = dx for channel c0+i of the input pixels (n,h,w) = (n[j],h[j],w[j])
// that exist (`inside`).
fn store_dx(block: mat4x4f, c0: u32, n: vec4u, h: vec4u, w: vec4u, inside: vec4<bool>, u: Params) {
  let plane = u.height * u.width;
  for (var j = 0u; j < 4u; j++) {
    if (!inside[j]) {
      continue;
    }
    let column = block[j];
    let out = n[j] * u.in_channels * plane + h[j] * u.width + w[j];
    for (var i = 0u; i < 4u && c0 + i < u.in_channels; i++) {
      idx[out + (c0 + i) * plane] = column[i];
    }
  }
}

// backward_input: dx[n,c,h,w] = sum over k,r,s with h = p*S + r - pad and w = q*S + s - pad
// for an output pixel (p,q) of dy[n,k,p,q] * w[k,c,r,s].
// One invocation = dx for 8 input channels c0..c0+7 x 8 input pixels that share a phase
// (h mod S, w mod S): those are reached by the same taps r = r0, r0+S, ... (and s alike),
// so no tap is tried that cannot land on them. Pixels of phase (ph,pw) are numbered
// (n, hh, ww) with h = hh*S + ph, hh < ceil(H/S); the ones past H or W are not stored.
// Accumulators dx<c half><pixel half> as in forward.
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
  let pixel_blocks = (pixels + 7u) / 8u;
  let phases = u.stride * u.stride;
  if (i >= pixel_blocks * phases * ((u.in_channels + 7u) / 8u)) {
    return;
  }
  let m0 = (i % pixel_blocks) * 8u;
  let phase = (i / pixel_blocks) % phases;
  let c0 = (i / (pixel_blocks * phases)) * 8u;
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
  let crr = u.in_channels * rr;
  let wlo = four(c0, u.in_channels - 1u) * rr;
  let whi = four(c0 + 4u, u.in_channels - 1u) * rr;

  let ma = four(m0, pixels - 1u);
  let mb = four(m0 + 4u, pixels - 1u);
  let na = ma / (hs * ws);
  let nb = mb / (hs * ws);
  let hha = vec4i((ma / ws) % hs);
  let hhb = vec4i((mb / ws) % hs);
  let wwa = vec4i(ma % ws);
  let wwb = vec4i(mb % ws);
  let ybase_a = na * u.out_channels * out_plane;
  let ybase_b = nb * u.out_channels * out_plane;

  var dxlo_a = mat4x4f();
  var dxlo_b = mat4x4f();
  var dxhi_a = mat4x4f();
  var dxhi_b = mat4x4f();
  for (var r = r0; r < u.kernel_size; r += u.stride) {
    for (var s = s0; s < u.kernel_size; s += u.stride) {
      let pa = hha + dp - i32((r - r0) / u.stride);
      let pb = hhb + dp - i32((r - r0) / u.stride);
      let qa = wwa + dq - i32((s - s0) / u.stride);
      let qb = wwb + dq - i32((s - s0) / u.stride);
      let in_a = (vec4u(pa) < vec4u(u.out_height)) & (vec4u(qa) < vec4u(u.out_width));
      let in_b = (vec4u(pb) < vec4u(u.out_height)) & (vec4u(qb) < vec4u(u.out_width));
      var ya = select(vec4u(0u), ybase_a + vec4u(pa) * u.out_width + vec4u(qa), in_a);
      var yb = select(vec4u(0u), ybase_b + vec4u(pb) * u.out_width + vec4u(qb), in_b);
      var wi = r * u.kernel_size + s;
      for (var k = 0u; k < u.out_channels; k++) {
        let lo = vec4f(iw[wlo.x + wi], iw[wlo.y + wi], iw[wlo.z + wi], iw[wlo.w + wi]);
        let hi = vec4f(iw[whi.x + wi], iw[whi.y + wi], iw[whi.z + wi], iw[whi.w + wi]);
        let va = select(vec4f(0.0), vec4f(idy[ya.x], idy[ya.y], idy[ya.z], idy[ya.w]), in_a);
        let vb = select(vec4f(0.0), vec4f(idy[yb.x], idy[yb.y], idy[yb.z], idy[yb.w]), in_b);
        dxlo_a += outer(lo, va);
        dxlo_b += outer(lo, vb);
        dxhi_a += outer(hi, va);
        dxhi_b += outer(hi, vb);
        ya += out_plane;
        yb += out_plane;
        wi += crr;
      }
    }
  }

  let ha = vec4u(hha) * u.stride + ph;
  let hb = vec4u(hhb) * u.stride + ph;
  let wa = vec4u(wwa) * u.stride + pw;
  let wb = vec4u(wwb) * u.stride + pw;
  let in_a = (vec4u(m0) + IOTA < vec4u(pixels)) & (ha < vec4u(u.height)) & (wa < vec4u(u.width));
  let in_b = (vec4u(m0 + 4u) + IOTA < vec4u(pixels)) & (hb < vec4u(u.height)) & (wb < vec4u(u.width));
  store_dx(dxlo_a, c0, na, ha, wa, in_a, u);
  store_dx(dxlo_b, c0, nb, hb, wb, in_b, u);
  store_dx(dxhi_a, c0 + 4u, na, ha, wa, in_a, u);
  store_dx(dxhi_b, c0 + 4u, nb, hb, wb, in_b, u);
}

@group(0) @binding(0) var<storage, read> wx: array<f32>;
@group(0) @binding(1) var<storage, read> wdy: array<f32>;
@group(0) @binding(2) var<storage, read_write> wdw: array<f32>;
@group(0) @binding(3) var<storage, read_write> wdb: array<f32>;
@group(0) @binding(4) var<uniform> wparams: Params;

// Stores column v of dw (channels k..k+3, column col = flat (c,r,s)).
fn store_dw(v: vec4f, k: u32, col: u32, u: Params) {
  let crr = u.in_channels * u.kernel_size * u.kernel_size;
  if (col >= crr) {
    return;
  }
  if (k < u.out_channels) { wdw[k * crr + col] = v.x; }
  if (k + 1u < u.out_channels) { wdw[(k + 1u) * crr + col] = v.y; }
  if (k + 2u < u.out_channels) { wdw[(k + 2u) * crr + col] = v.z; }
  if (k + 3u < u.out_channels) { wdw[(k + 3u) * crr + col] = v.w; }
}

// Stores db for channels k..k+3.
fn store_db(v: vec4f, k: u32, u: Params) {
  if (k < u.out_channels) { wdb[k] = v.x; }
  if (k + 1u < u.out_channels) { wdb[k + 1u] = v.y; }
  if (k + 2u < u.out_channels) { wdb[k + 2u] = v.z; }
  if (k + 3u < u.out_channels) { wdb[k + 3u] = v.w; }
}

// backward_weight: dw[k,c,r,s] = sum_n,p,q dy[n,k,p,q] * x[n,c,p*S+r-pad,q*S+s-pad] and
// db[k] = sum_n,p,q dy[n,k,p,q]: the matrix product dY [K, NPQ] x X^T [NPQ, CRR].
// One invocation = dw for 8 output channels k0..k0+7 x 8 columns col0..col0+7 (flat (c,r,s)),
// summed over all (n,p,q) in order; the invocations of the first columns also sum db from
// the dy they load anyway. No split of the sum across lanes: that would need workgroup
// memory and a barrier, which cost more here (llvmpipe) than they save.
// Accumulators dw<k half><column half>: lo/hi = channels, a/b = columns col0..+3 / col0+4..+7.
@compute @workgroup_size(WORKGROUP)
fn backward_weight(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = wparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  let rr = u.kernel_size * u.kernel_size;
  let crr = u.in_channels * rr;
  let col_blocks = (crr + 7u) / 8u;
  if (i >= col_blocks * ((u.out_channels + 7u) / 8u)) {
    return;
  }
  let k0 = (i / col_blocks) * 8u;
  let col0 = (i % col_blocks) * 8u;
  let in_plane = u.height * u.width;
  let out_plane = u.out_height * u.out_width;
  let ylo = four(k0, u.out_channels - 1u) * out_plane;
  let yhi = four(k0 + 4u, u.out_channels - 1u) * out_plane;

  // Per column: its tap (r,s), and its offset from the tap (0,0) of a pixel within an image.
  let cola = four(col0, crr - 1u);
  let colb = four(col0 + 4u, crr - 1u);
  let ra = vec4i((cola % rr) / u.kernel_size);
  let rb = vec4i((colb % rr) / u.kernel_size);
  let sa = vec4i((cola % rr) % u.kernel_size);
  let sb = vec4i((colb % rr) % u.kernel_size);
  let offset_a = vec4i((cola / rr) * in_plane) + ra * i32(u.width) + sa;
  let offset_b = vec4i((colb / rr) * in_plane) + rb * i32(u.width) + sb;

  var dwlo_a = mat4x4f();
  var dwlo_b = mat4x4f();
  var dwhi_a = mat4x4f();
  var dwhi_b = mat4x4f();
  var dblo = vec4f();
  var dbhi = vec4f();
  for (var n = 0u; n < u.batch; n++) {
    for (var p = 0u; p < u.out_height; p++) {
      let h = i32(p * u.stride) - i32(u.padding);
      let hin_a = vec4u(h + ra) < vec4u(u.height);
      let hin_b = vec4u(h + rb) < vec4u(u.height);
      let xrow = i32(n * u.in_channels * in_plane) + h * i32(u.width);
      var yi = n * u.out_channels * out_plane + p * u.out_width;
      for (var q = 0u; q < u.out_width; q++) {
        let w = i32(q * u.stride) - i32(u.padding);
        let in_a = hin_a & (vec4u(w + sa) < vec4u(u.width));
        let in_b = hin_b & (vec4u(w + sb) < vec4u(u.width));
        let xa = select(vec4u(0u), vec4u(xrow + w + offset_a), in_a);
        let xb = select(vec4u(0u), vec4u(xrow + w + offset_b), in_b);
        let lo = vec4f(wdy[yi + ylo.x], wdy[yi + ylo.y], wdy[yi + ylo.z], wdy[yi + ylo.w]);
        let hi = vec4f(wdy[yi + yhi.x], wdy[yi + yhi.y], wdy[yi + yhi.z], wdy[yi + yhi.w]);
        let va = select(vec4f(0.0), vec4f(wx[xa.x], wx[xa.y], wx[xa.z], wx[xa.w]), in_a);
        let vb = select(vec4f(0.0), vec4f(wx[xb.x], wx[xb.y], wx[xb.z], wx[xb.w]), in_b);
        dwlo_a += outer(lo, va);
        dwlo_b += outer(lo, vb);
        dwhi_a += outer(hi, va);
        dwhi_b += outer(hi, vb);
        dblo += lo;
        dbhi += hi;
        yi += 1u;
      }
    }
  }

  store_dw(dwlo_a[0], k0, col0, u);
  store_dw(dwlo_a[1], k0, col0 + 1u, u);
  store_dw(dwlo_a[2], k0, col0 + 2u, u);
  store_dw(dwlo_a[3], k0, col0 + 3u, u);
  store_dw(dwlo_b[0], k0, col0 + 4u, u);
  store_dw(dwlo_b[1], k0, col0 + 5u, u);
  store_dw(dwlo_b[2], k0, col0 + 6u, u);
  store_dw(dwlo_b[3], k0, col0 + 7u, u);
  store_dw(dwhi_a[0], k0 + 4u, col0, u);
  store_dw(dwhi_a[1], k0 + 4u, col0 + 1u, u);
  store_dw(dwhi_a[2], k0 + 4u, col0 + 2u, u);
  store_dw(dwhi_a[3], k0 + 4u, col0 + 3u, u);
  store_dw(dwhi_b[0], k0 + 4u, col0 + 4u, u);
  store_dw(dwhi_b[1], k0 + 4u, col0 + 5u, u);
  store_dw(dwhi_b[2], k0 + 4u, col0 + 6u, u);
  store_dw(dwhi_b[3], k0 + 4u, col0 + 7u, u);
  if (col0 == 0u) {
    store_db(dblo, k0, u);
    store_db(dbhi, k0 + 4u, u);
  }
}
