// conv2d, the plain tier: the textbook loops, one invocation per output element (forward,
// backward_input) or one workgroup per weight whose invocations share its sum over the batch
// and the output pixels (backward_weight). The reference the CPU wing's tuned kernels
// (kernels/cpu/conv2d.wgsl) are tested against and must beat on llvmpipe.
//
// forward: y[n,k,p,q] = b[k] + sum_c,r,s x[n,c,p*S+r-pad,q*S+s-pad] * w[k,c,r,s]
// (taps that fall in the zero padding contribute nothing).
//
// legend: n image, c input channel, k output channel, (h,w) input pixel, (p,q) output pixel,
// (r,s) kernel tap, R kernel size, S stride, pad padding; P = (H + 2 pad - R) / S + 1.
//
// bindings (per entry point, numbered from 0 in the order listed):
//   forward:         x [N,C,H,W], w [K,C,R,R], b [K], y [N,K,P,Q], params
//   backward_input:  dy [N,K,P,Q], w [K,C,R,R], dx [N,C,H,W], params
//   backward_weight: x [N,C,H,W], dy [N,K,P,Q], dw [K,C,R,R], db [K], params
// The flat index of an invocation (forward, backward_input) or of a workgroup
// (backward_weight) spans a 2-D grid of workgroups (see grid() in runtime.ts).

override WORKGROUP: u32 = 64;

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

@group(0) @binding(0) var<storage, read> fx: array<f32>;
@group(0) @binding(1) var<storage, read> fw: array<f32>;
@group(0) @binding(2) var<storage, read> fb: array<f32>;
@group(0) @binding(3) var<storage, read_write> fy: array<f32>;
@group(0) @binding(4) var<uniform> fparams: Params;

// forward: one invocation = y[n,k,p,q].
@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let u = fparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i >= u.batch * u.out_channels * u.out_height * u.out_width) {
    return;
  }
  let q = i % u.out_width;
  let p = (i / u.out_width) % u.out_height;
  let k = (i / (u.out_width * u.out_height)) % u.out_channels;
  let n = i / (u.out_width * u.out_height * u.out_channels);
  var sum = fb[k];
  for (var c = 0u; c < u.in_channels; c++) {
    for (var r = 0u; r < u.kernel_size; r++) {
      for (var s = 0u; s < u.kernel_size; s++) {
        // i32 so that a tap in the padding is negative rather than wrapped around.
        let h = i32(p * u.stride + r) - i32(u.padding);
        let w = i32(q * u.stride + s) - i32(u.padding);
        if (h >= 0 && h < i32(u.height) && w >= 0 && w < i32(u.width)) {
          let xi = ((n * u.in_channels + c) * u.height + u32(h)) * u.width + u32(w);
          let wi = ((k * u.in_channels + c) * u.kernel_size + r) * u.kernel_size + s;
          sum += fx[xi] * fw[wi];
        }
      }
    }
  }
  fy[i] = sum;
}

@group(0) @binding(0) var<storage, read> idy: array<f32>;
@group(0) @binding(1) var<storage, read> iw: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<f32>;
@group(0) @binding(3) var<uniform> iparams: Params;

// backward_input: one invocation = dx[n,c,h,w] = sum over k,r,s with h = p*S + r - pad and
// w = q*S + s - pad for an output pixel (p,q) of dy[n,k,p,q] * w[k,c,r,s]. Only the taps that
// land on (h,w) are visited: r = (h + pad) mod S, then every S-th, while r <= h + pad (p >= 0).
@compute @workgroup_size(WORKGROUP)
fn backward_input(
  @builtin(global_invocation_id) gid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
) {
  let u = iparams;
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i >= u.batch * u.in_channels * u.height * u.width) {
    return;
  }
  let w = i % u.width;
  let h = (i / u.width) % u.height;
  let c = (i / (u.width * u.height)) % u.in_channels;
  let n = i / (u.width * u.height * u.in_channels);
  let hp = h + u.padding;
  let wp = w + u.padding;
  var sum = 0.0;
  for (var r = hp % u.stride; r < min(u.kernel_size, hp + 1u); r += u.stride) {
    let p = (hp - r) / u.stride;
    for (var s = wp % u.stride; s < min(u.kernel_size, wp + 1u); s += u.stride) {
      let q = (wp - s) / u.stride;
      if (p < u.out_height && q < u.out_width) {
        for (var k = 0u; k < u.out_channels; k++) {
          let dyi = ((n * u.out_channels + k) * u.out_height + p) * u.out_width + q;
          let wi = ((k * u.in_channels + c) * u.kernel_size + r) * u.kernel_size + s;
          sum += idy[dyi] * iw[wi];
        }
      }
    }
  }
  idx[i] = sum;
}

@group(0) @binding(0) var<storage, read> wx: array<f32>;
@group(0) @binding(1) var<storage, read> wdy: array<f32>;
@group(0) @binding(2) var<storage, read_write> wdw: array<f32>;
@group(0) @binding(3) var<storage, read_write> wdb: array<f32>;
@group(0) @binding(4) var<uniform> wparams: Params;

var<workgroup> partial: array<f32, WORKGROUP>;

// backward_weight: workgroup i < K*C*R*R computes
// dw[k,c,r,s] = sum_n,p,q dy[n,k,p,q] * x[n,c,p*S+r-pad,q*S+s-pad],
// and each of the last K workgroups db[k] = sum_n,p,q dy[n,k,p,q]. Invocation l of a
// workgroup sums the rows (n, p) of dy numbered l, l + WORKGROUP, ... (row = n*P + p), then
// invocation 0 adds the WORKGROUP partial sums.
@compute @workgroup_size(WORKGROUP)
fn backward_weight(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) l: u32,
) {
  let u = wparams;
  let i = wid.x + wid.y * groups.x;
  let weights = u.out_channels * u.in_channels * u.kernel_size * u.kernel_size;
  // Every invocation of the workgroup reaches the barrier below: no early return.
  let is_bias = i >= weights;
  let s = i % u.kernel_size;
  let r = (i / u.kernel_size) % u.kernel_size;
  let c = (i / (u.kernel_size * u.kernel_size)) % u.in_channels;
  let k = select(i / (u.kernel_size * u.kernel_size * u.in_channels), i - weights, is_bias);
  var sum = 0.0;
  if (i < weights + u.out_channels) {
    for (var row = l; row < u.batch * u.out_height; row += WORKGROUP) {
      let n = row / u.out_height;
      let p = row % u.out_height;
      let h = i32(p * u.stride + r) - i32(u.padding);
      let dy_row = ((n * u.out_channels + k) * u.out_height + p) * u.out_width;
      if (is_bias) {
        for (var q = 0u; q < u.out_width; q++) {
          sum += wdy[dy_row + q];
        }
        continue;
      }
      if (h < 0 || h >= i32(u.height)) {
        continue;
      }
      let x_row = ((n * u.in_channels + c) * u.height + u32(h)) * u.width;
      for (var q = 0u; q < u.out_width; q++) {
        let w = i32(q * u.stride + s) - i32(u.padding);
        if (w >= 0 && w < i32(u.width)) {
          sum += wdy[dy_row + q] * wx[x_row + u32(w)];
        }
      }
    }
  }
  partial[l] = sum;
  workgroupBarrier();
  if (l != 0u || i >= weights + u.out_channels) {
    return;
  }
  var total = 0.0;
  for (var t = 0u; t < WORKGROUP; t++) {
    total += partial[t];
  }
  if (is_bias) {
    wdb[k] = total;
  } else {
    wdw[i] = total;
  }
}
