// AvgPool2d with windows that do not overlap (S >= R), after an optional fused activation, in
// the CPU wing: kernels/pool2d.wgsl's avg_forward and avg_backward (the reference; the same
// floats) over four images at once, one texel of the packed layout (kernels/cpu/conv2d.wgsl's
// N4: texel (g, c, h, w) = pixel (h, w) of channel c of images 4g..4g+3).
//
// forward:  y[n,c,p,q] = sum_r,s a(x[n,c,p*S+r,q*S+s]) / R^2, summed in row-major order.
// backward: restates forward; window (p,q)'s tile of dx (kernels/pool2d.wgsl's tiles: the
//   S x S pixels from its top-left tap, the last row and column of windows down to the
//   plane's edge) gets dx = a'(x) * g, g = dy / R^2 on the R x R taps and 0 elsewhere.
//
// Handoffs (lib/cpu/handoff.ts): next to the wing's Conv2d, x and dx (PACKED_IN: a conv
// before) or y and dy (PACKED_OUT: a conv after) are packed textures; otherwise a plain
// tensor is read from its texture mirror four single floats at a time, and written four
// single floats at a time. A packed dx holds 0 for the images past N (the conv's weight
// gradients sum over the four lanes); y is written plain as well where Y_PLAIN says.
//
// One invocation = one window (g, c, p, q) of four images. Index legend: g group of four
// images, c channel, (h, w) pixel, (p, q) window, (r, s) tap or tile pixel.
// bindings:
//   forward:  0 x (texture: packed, or the plain tensor's mirror), 1 y [N,C,P,Q],
//             2 y4 (storage texture)
//   backward: 0 x (texture), 1 dy (texture: packed, or the plain tensor's mirror),
//             2 dx [N,C,H,W], 3 dx4 (storage texture)

override WORKGROUP: u32 = 8;
override BATCH: u32;
override CHANNELS: u32;
override HEIGHT: u32;
override WIDTH: u32;
override OUT_HEIGHT: u32;
override OUT_WIDTH: u32;
override KERNEL_SIZE: u32;
override STRIDE: u32;
// The fused activation: 0 none, 1 tanh, 2 sigmoid, 3 relu (kernels/pool2d.wgsl's codes).
override ACTIVATION: u32 = 0;
override PACKED_IN: bool = false;
override PACKED_OUT: bool = false;
override Y_PLAIN: bool = true;
// Texels per row of a texture (lib/cpu/texture.ts TEXTURE_ROW).
override TEXTURE_ROW: u32;

const IOTA = vec4u(0u, 1u, 2u, 3u);
// Windows of four images: ceil(N / 4) groups x C x P x Q.
override WINDOWS: u32 = (BATCH + 3u) / 4u * CHANNELS * OUT_HEIGHT * OUT_WIDTH;

@group(0) @binding(0) var x: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var y4: texture_storage_2d<rgba32float, write>;

@group(0) @binding(1) var dy: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var dx4: texture_storage_2d<rgba32float, write>;

fn texel_at(i: u32) -> vec2u {
  return vec2u(i % TEXTURE_ROW, i / TEXTURE_ROW);
}

fn texel(t: texture_2d<f32>, i: u32) -> vec4f {
  return textureLoad(t, texel_at(i), 0);
}

fn live_images(g: u32) -> vec4<bool> {
  return vec4u(g * 4u) + IOTA < vec4u(BATCH);
}

// Pixel `at` (h*W + w, or p*Q + q) of channel c of images 4g..4g+3 of a plain tensor with
// planes of `plane` floats, from its mirror (image N-1 past N).
fn plain_quad(t: texture_2d<f32>, g: u32, c: u32, at: u32, plane: u32) -> vec4f {
  let f = (min(vec4u(g * 4u) + IOTA, vec4u(BATCH - 1u)) * CHANNELS + c) * plane + at;
  return vec4f(
    texel(t, f.x / 4u)[f.x % 4u],
    texel(t, f.y / 4u)[f.y % 4u],
    texel(t, f.z / 4u)[f.z % 4u],
    texel(t, f.w / 4u)[f.w % 4u],
  );
}

// x at pixel `at` of channel c, images 4g..4g+3.
fn x_quad(g: u32, c: u32, at: u32) -> vec4f {
  if (PACKED_IN) {
    return texel(x, (g * CHANNELS + c) * HEIGHT * WIDTH + at);
  }
  return plain_quad(x, g, c, at, HEIGHT * WIDTH);
}

fn dy_quad(g: u32, c: u32, at: u32) -> vec4f {
  if (PACKED_OUT) {
    return texel(dy, (g * CHANNELS + c) * OUT_HEIGHT * OUT_WIDTH + at);
  }
  return plain_quad(dy, g, c, at, OUT_HEIGHT * OUT_WIDTH);
}

// kernels/pool2d.wgsl's activation functions, four lanes at once.
fn tanh_of(v: vec4f) -> vec4f {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

fn sigmoid_of(v: vec4f) -> vec4f {
  return 1.0 / (1.0 + exp(-v));
}

fn activate(v: vec4f) -> vec4f {
  switch ACTIVATION {
    case 1u: {
      return tanh_of(v);
    }
    case 2u: {
      return sigmoid_of(v);
    }
    case 3u: {
      return max(v, vec4f(0.0));
    }
    default: {
      return v;
    }
  }
}

fn activation_backward(g: vec4f, v: vec4f) -> vec4f {
  switch ACTIVATION {
    case 1u: {
      let t = tanh_of(v);
      return g * (1.0 - t * t);
    }
    case 2u: {
      let t = sigmoid_of(v);
      return g * t * (1.0 - t);
    }
    case 3u: {
      return select(vec4f(0.0), g, v > vec4f(0.0));
    }
    default: {
      return g;
    }
  }
}

// The flat indices of position `at` of channel c in images 4g..4g+3 of a plain tensor with
// planes of `plane` floats.
fn plain_indices(g: u32, c: u32, at: u32, plane: u32) -> vec4u {
  return ((vec4u(g * 4u) + IOTA) * CHANNELS + c) * plane + at;
}

// Window i = ((g * C + c) * P + p) * Q + q.
struct Window {
  g: u32,
  c: u32,
  p: u32,
  q: u32,
}

fn window_of(i: u32) -> Window {
  let q = i % OUT_WIDTH;
  let p = (i / OUT_WIDTH) % OUT_HEIGHT;
  let gc = i / (OUT_WIDTH * OUT_HEIGHT);
  return Window(gc / CHANNELS, gc % CHANNELS, p, q);
}

@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i >= WINDOWS) {
    return;
  }
  let o = window_of(i);
  let area = f32(KERNEL_SIZE * KERNEL_SIZE);
  var at = o.p * STRIDE * WIDTH + o.q * STRIDE;
  var sum = vec4f(0.0);
  for (var r = 0u; r < KERNEL_SIZE; r++) {
    for (var s = 0u; s < KERNEL_SIZE; s++) {
      sum += activate(x_quad(o.g, o.c, at + s));
    }
    at += WIDTH;
  }
  let v = sum / area;
  let live = live_images(o.g);
  let m = o.p * OUT_WIDTH + o.q;
  if (PACKED_OUT) {
    textureStore(y4, texel_at(i), select(vec4f(), v, live));
  }
  if (Y_PLAIN) {
    let f = plain_indices(o.g, o.c, m, OUT_HEIGHT * OUT_WIDTH);
    y[f.x] = v.x;
    if (live.y) {
      y[f.y] = v.y;
    }
    if (live.z) {
      y[f.z] = v.z;
    }
    if (live.w) {
      y[f.w] = v.w;
    }
  }
}

// kernels/pool2d.wgsl's tiles.
fn tile_rows(p: u32) -> u32 {
  return select(STRIDE, HEIGHT - (OUT_HEIGHT - 1u) * STRIDE, p == OUT_HEIGHT - 1u);
}

fn tile_columns(q: u32) -> u32 {
  return select(STRIDE, WIDTH - (OUT_WIDTH - 1u) * STRIDE, q == OUT_WIDTH - 1u);
}

fn most_tile_rows() -> u32 {
  return max(STRIDE, HEIGHT - (OUT_HEIGHT - 1u) * STRIDE);
}

fn most_tile_columns() -> u32 {
  return max(STRIDE, WIDTH - (OUT_WIDTH - 1u) * STRIDE);
}

// dx of images 4g..4g+3 at pixel `at` of channel c: packed (0 past N), else plain.
fn store_dx(g: u32, c: u32, at: u32, v: vec4f) {
  let live = live_images(g);
  if (PACKED_IN) {
    textureStore(dx4, texel_at((g * CHANNELS + c) * HEIGHT * WIDTH + at), select(vec4f(), v, live));
    return;
  }
  let f = plain_indices(g, c, at, HEIGHT * WIDTH);
  dx[f.x] = v.x;
  if (live.y) {
    dx[f.y] = v.y;
  }
  if (live.z) {
    dx[f.z] = v.z;
  }
  if (live.w) {
    dx[f.w] = v.w;
  }
}

@compute @workgroup_size(WORKGROUP)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i >= WINDOWS) {
    return;
  }
  let o = window_of(i);
  let area = f32(KERNEL_SIZE * KERNEL_SIZE);
  let rows = tile_rows(o.p);
  let columns = tile_columns(o.q);
  // 0 + dy: a -0 becomes +0, as kernels/pool2d.wgsl's from_zero.
  let d = dy_quad(o.g, o.c, o.p * OUT_WIDTH + o.q);
  let g = select(d, vec4f(0.0), d == vec4f(0.0)) / area;
  var at = o.p * STRIDE * WIDTH + o.q * STRIDE;
  for (var r = 0u; r < most_tile_rows(); r++) {
    for (var s = 0u; s < most_tile_columns(); s++) {
      if (r < rows && s < columns) {
        let tap = select(vec4f(0.0), g, r < KERNEL_SIZE && s < KERNEL_SIZE);
        store_dx(o.g, o.c, at + s, activation_backward(tap, x_quad(o.g, o.c, at + s)));
      }
    }
    at += WIDTH;
  }
}
