// conv2d as three implicit matrix products, register-blocked: each invocation keeps an 8x8
// block of outputs in registers (16 vec4 accumulators) and never touches workgroup memory,
// except backward_weight, which splits its long reduction across the lanes of a workgroup
// and adds the parts up in a fixed order (no atomics: bit-reproducible run to run).
// The plain version, kernels/conv2d_naive.wgsl, is the reference these must match.
//
// forward: y[n,k,p,q] = b[k] + sum_c,r,s x[n,c,p*S+r-pad,q*S+s-pad] * w[k,c,r,s]
// (taps that fall in the zero padding contribute nothing).
//
// legend: n image, c input channel, k output channel, (h,w) input pixel, (p,q) output pixel,
// (r,s) kernel tap, R kernel size, S stride, pad padding; P = (H + 2 pad - R) / S + 1.
// A "pixel" below is a flat (n,p,q) or (n,h,w) index; blocks that run past the end of a
// dimension compute on clamped indices and store nothing there.
//
// bindings (per entry point, numbered from 0 in the order listed):
//   forward:         x [N,C,H,W], w [K,C,R,R], b [K], y [N,K,P,Q], params
//   backward_input:  dy [N,K,P,Q], w [K,C,R,R], dx [N,C,H,W], params
//   backward_weight: x [N,C,H,W], dy [N,K,P,Q], dw [K,C,R,R], db [K], params

// Invocations per workgroup.
override WORKGROUP: u32 = 64;
// backward_weight: lanes that share one 8x8 block of (dw, db) and split its reduction over
// (n,p) rows; a power of two that divides WORKGROUP.
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

// The offsets (first + i) * stride of 8 consecutive rows of a matrix with `count` rows; rows
// past the end repeat the last one, so that loads stay in bounds.
fn rows8(first: u32, count: u32, stride: u32) -> array<u32, 8> {
  var rows: array<u32, 8>;
  for (var i = 0u; i < 8u; i++) {
    rows[i] = min(first + i, count - 1u) * stride;
  }
  return rows;
}

@group(0) @binding(0) var<storage, read> fx: array<f32>;
@group(0) @binding(1) var<storage, read> fw: array<f32>;
@group(0) @binding(2) var<storage, read> fb: array<f32>;
@group(0) @binding(3) var<storage, read_write> fy: array<f32>;
@group(0) @binding(4) var<uniform> fparams: Params;

// forward: one invocation = y for 8 output channels k0..k0+7 x 8 consecutive output pixels
// m0..m0+7 (flat (n,p,q)). Loops over taps (r,s), then input channels c, so that the
// padding test of a pixel is made once per tap rather than once per (c,r,s).
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
  let wrow = rows8(k0, u.out_channels, u.in_channels * rr);

  // Per pixel: the image's first element and the top-left tap (may lie in the padding).
  var xbase: array<u32, 8>;
  var h0: array<i32, 8>;
  var w0: array<i32, 8>;
  for (var j = 0u; j < 8u; j++) {
    let m = min(m0 + j, pixels - 1u);
    let pq = m % plane;
    xbase[j] = (m / plane) * u.in_channels * in_plane;
    h0[j] = i32((pq / u.out_width) * u.stride) - i32(u.padding);
    w0[j] = i32((pq % u.out_width) * u.stride) - i32(u.padding);
  }

  // acc[2j] holds channels k0..k0+3 of pixel j, acc[2j+1] channels k0+4..k0+7.
  var acc: array<vec4f, 16>;
  for (var r = 0u; r < u.kernel_size; r++) {
    for (var s = 0u; s < u.kernel_size; s++) {
      var xi: array<u32, 8>;
      var inside: array<bool, 8>;
      for (var j = 0u; j < 8u; j++) {
        let h = h0[j] + i32(r);
        let w = w0[j] + i32(s);
        inside[j] = u32(h) < u.height && u32(w) < u.width;
        xi[j] = select(0u, xbase[j] + u32(h) * u.width + u32(w), inside[j]);
      }
      var wi = r * u.kernel_size + s;
      for (var c = 0u; c < u.in_channels; c++) {
        let lo = vec4f(fw[wrow[0] + wi], fw[wrow[1] + wi], fw[wrow[2] + wi], fw[wrow[3] + wi]);
        let hi = vec4f(fw[wrow[4] + wi], fw[wrow[5] + wi], fw[wrow[6] + wi], fw[wrow[7] + wi]);
        for (var j = 0u; j < 8u; j++) {
          let v = select(0.0, fx[xi[j]], inside[j]);
          acc[2u * j] = fma(lo, vec4f(v), acc[2u * j]);
          acc[2u * j + 1u] = fma(hi, vec4f(v), acc[2u * j + 1u]);
        }
        for (var j = 0u; j < 8u; j++) {
          xi[j] += in_plane;
        }
        wi += rr;
      }
    }
  }

  for (var j = 0u; j < 8u; j++) {
    let m = m0 + j;
    if (m >= pixels) {
      break;
    }
    let out = (m / plane) * u.out_channels * plane + m % plane;
    for (var kk = 0u; kk < 8u; kk++) {
      let k = k0 + kk;
      if (k < u.out_channels) {
        fy[out + k * plane] = acc[2u * j + kk / 4u][kk % 4u] + fb[k];
      }
    }
  }
}

@group(0) @binding(0) var<storage, read> idy: array<f32>;
@group(0) @binding(1) var<storage, read> iw: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<f32>;
@group(0) @binding(3) var<uniform> iparams: Params;

// backward_input: dx[n,c,h,w] = sum over k,r,s with h = p*S + r - pad and w = q*S + s - pad
// for an output pixel (p,q) of dy[n,k,p,q] * w[k,c,r,s].
// One invocation = dx for 8 input channels c0..c0+7 x 8 input pixels that share a phase
// (h mod S, w mod S): those are reached by the same taps r = r0, r0+S, ... (and s alike),
// so no tap is tried that cannot land on them. Pixels of phase (ph,pw) are numbered
// (n, hh, ww) with h = hh*S + ph, hh < ceil(H/S); the ones past H or W are not stored.
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
  // First taps that land on this phase, and the output pixel p = hh + dp - a that tap
  // r = r0 + a*S reads (likewise q = ww + dq - b for s = s0 + b*S).
  let r0 = (ph + u.padding) % u.stride;
  let s0 = (pw + u.padding) % u.stride;
  let dp = i32((ph + u.padding) / u.stride);
  let dq = i32((pw + u.padding) / u.stride);
  let out_plane = u.out_height * u.out_width;
  let rr = u.kernel_size * u.kernel_size;
  let crr = u.in_channels * rr;
  let wcol = rows8(c0, u.in_channels, rr);

  var dybase: array<u32, 8>;
  var hh: array<i32, 8>;
  var ww: array<i32, 8>;
  for (var j = 0u; j < 8u; j++) {
    let m = min(m0 + j, pixels - 1u);
    dybase[j] = (m / (hs * ws)) * u.out_channels * out_plane;
    hh[j] = i32((m / ws) % hs) + dp;
    ww[j] = i32(m % ws) + dq;
  }

  // acc[2j] holds channels c0..c0+3 of pixel j, acc[2j+1] channels c0+4..c0+7.
  var acc: array<vec4f, 16>;
  for (var r = r0; r < u.kernel_size; r += u.stride) {
    for (var s = s0; s < u.kernel_size; s += u.stride) {
      let a = i32((r - r0) / u.stride);
      let b = i32((s - s0) / u.stride);
      var yi: array<u32, 8>;
      var inside: array<bool, 8>;
      for (var j = 0u; j < 8u; j++) {
        let p = hh[j] - a;
        let q = ww[j] - b;
        inside[j] = u32(p) < u.out_height && u32(q) < u.out_width;
        yi[j] = select(0u, dybase[j] + u32(p) * u.out_width + u32(q), inside[j]);
      }
      var wi = r * u.kernel_size + s;
      for (var k = 0u; k < u.out_channels; k++) {
        let lo = vec4f(iw[wi + wcol[0]], iw[wi + wcol[1]], iw[wi + wcol[2]], iw[wi + wcol[3]]);
        let hi = vec4f(iw[wi + wcol[4]], iw[wi + wcol[5]], iw[wi + wcol[6]], iw[wi + wcol[7]]);
        for (var j = 0u; j < 8u; j++) {
          let v = select(0.0, idy[yi[j]], inside[j]);
          acc[2u * j] = fma(lo, vec4f(v), acc[2u * j]);
          acc[2u * j + 1u] = fma(hi, vec4f(v), acc[2u * j + 1u]);
        }
        for (var j = 0u; j < 8u; j++) {
          yi[j] += out_plane;
        }
        wi += crr;
      }
    }
  }

  let in_plane = u.height * u.width;
  for (var j = 0u; j < 8u; j++) {
    let m = m0 + j;
    let h = u32(hh[j] - dp) * u.stride + ph;
    let w = u32(ww[j] - dq) * u.stride + pw;
    if (m >= pixels || h >= u.height || w >= u.width) {
      continue;
    }
    let out = (m / (hs * ws)) * u.in_channels * in_plane + h * u.width + w;
    for (var cc = 0u; cc < 8u; cc++) {
      let c = c0 + cc;
      if (c < u.in_channels) {
        idx[out + c * in_plane] = acc[2u * j + cc / 4u][cc % 4u];
      }
    }
  }
}

@group(0) @binding(0) var<storage, read> wx: array<f32>;
@group(0) @binding(1) var<storage, read> wdy: array<f32>;
@group(0) @binding(2) var<storage, read_write> wdw: array<f32>;
@group(0) @binding(3) var<storage, read_write> wdb: array<f32>;
@group(0) @binding(4) var<uniform> wparams: Params;

// The partial sums of every lane of a workgroup: 64 floats per lane (16 KiB).
var<workgroup> partial: array<f32, 4096>;

// backward_weight: dw[k,c,r,s] = sum_n,p,q dy[n,k,p,q] * x[n,c,p*S+r-pad,q*S+s-pad] and
// db[k] = sum_n,p,q dy[n,k,p,q]: one matrix product dY [K, NPQ] x X^T [NPQ, CRR+1], where
// X gets a last column of ones so that db comes out as column CRR.
// A block = 8 output channels x 8 columns (c,r,s); SPLIT lanes share a block, lane l summing
// the (n,p) rows l, l+SPLIT, ...; then lane l adds up, in lane order, the SPLIT parts of
// outputs l, l+SPLIT, ... of the block through workgroup memory and stores them.
@compute @workgroup_size(WORKGROUP)
fn backward_weight(
  @builtin(local_invocation_index) lane: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = wparams;
  let rr = u.kernel_size * u.kernel_size;
  let crr = u.in_channels * rr;
  let col_blocks = (crr + 8u) / 8u;
  let blocks = col_blocks * ((u.out_channels + 7u) / 8u);
  let slice = lane % SPLIT;
  let block = (wid.x + wid.y * groups.x) * (WORKGROUP / SPLIT) + lane / SPLIT;
  // Lanes past the last block still take part in the barrier; they store nothing.
  let k0 = (min(block, blocks - 1u) / col_blocks) * 8u;
  let col0 = (min(block, blocks - 1u) % col_blocks) * 8u;
  let in_plane = u.height * u.width;
  let out_plane = u.out_height * u.out_width;
  let yrow = rows8(k0, u.out_channels, out_plane);

  // Per column: its (c,r,s) offset in an image, its tap, and whether it is the ones column.
  var xoff: array<u32, 8>;
  var tap_r: array<i32, 8>;
  var tap_s: array<i32, 8>;
  var ones: array<bool, 8>;
  for (var j = 0u; j < 8u; j++) {
    let col = min(col0 + j, crr);
    let rs = col % rr;
    ones[j] = col == crr;
    tap_r[j] = i32(rs / u.kernel_size);
    tap_s[j] = i32(rs % u.kernel_size);
    xoff[j] = select((col / rr) * in_plane, 0u, ones[j]);
  }

  // acc[2j] holds channels k0..k0+3 of column j, acc[2j+1] channels k0+4..k0+7.
  var acc: array<vec4f, 16>;
  for (var row = slice; row < u.batch * u.out_height; row += SPLIT) {
    let n = row / u.out_height;
    let p = row % u.out_height;
    let h = i32(p * u.stride) - i32(u.padding);
    var hin: array<bool, 8>;
    for (var j = 0u; j < 8u; j++) {
      hin[j] = u32(h + tap_r[j]) < u.height && !ones[j];
    }
    let xrow = i32(n * u.in_channels * in_plane) + h * i32(u.width);
    var yi = n * u.out_channels * out_plane + p * u.out_width;
    for (var q = 0u; q < u.out_width; q++) {
      let w = i32(q * u.stride) - i32(u.padding);
      let lo = vec4f(wdy[yi + yrow[0]], wdy[yi + yrow[1]], wdy[yi + yrow[2]], wdy[yi + yrow[3]]);
      let hi = vec4f(wdy[yi + yrow[4]], wdy[yi + yrow[5]], wdy[yi + yrow[6]], wdy[yi + yrow[7]]);
      for (var j = 0u; j < 8u; j++) {
        let inside = hin[j] && u32(w + tap_s[j]) < u.width;
        let xi = select(0u, u32(xrow + w + tap_r[j] * i32(u.width) + tap_s[j]) + xoff[j], inside);
        let v = select(select(0.0, wx[xi], inside), 1.0, ones[j]);
        acc[2u * j] = fma(lo, vec4f(v), acc[2u * j]);
        acc[2u * j + 1u] = fma(hi, vec4f(v), acc[2u * j + 1u]);
      }
      yi += 1u;
    }
  }

  for (var e = 0u; e < 16u; e++) {
    for (var t = 0u; t < 4u; t++) {
      partial[lane * 64u + e * 4u + t] = acc[e][t];
    }
  }
  workgroupBarrier();
  if (block >= blocks) {
    return;
  }
  let first = (lane - slice) * 64u;
  for (var e = slice; e < 64u; e += SPLIT) {
    var sum = 0.0;
    for (var l = 0u; l < SPLIT; l++) {
      sum += partial[first + l * 64u + e];
    }
    let k = k0 + e % 8u;
    let col = col0 + e / 8u;
    if (k < u.out_channels && col < crr) {
      wdw[k * crr + col] = sum;
    } else if (k < u.out_channels && col == crr) {
      wdb[k] = sum;
    }
  }
}
