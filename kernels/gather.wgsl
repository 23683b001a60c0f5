// Gathers one batch of the epoch's shuffled order out of the whole dataset (uploaded once,
// u8 pixels packed 4 per u32) and normalizes it as torchvision's ToTensor + Normalize do:
//   x[i, 0, pad + r, pad + c] = (images[order[batch * batch_size + i], r, c] / 255 - mean) / std
//   labels[i] = dataset_labels[order[batch * batch_size + i]]
// The border of width `pad` holds 0.0: zero padding AFTER normalization, which is what a
// Conv2d(padding=pad) does to the normalized input (the classic LeNet-5 pads in the conv).
// One invocation writes one row of one image, all W + 2 pad floats of it; row 0 also writes
// the label. When the rows are whole vec4s (pad 0, W a multiple of 4: MNIST's 28), it reads
// each word of 4 pixels once and writes 4 floats at a time: on llvmpipe every storage access
// costs more than the arithmetic, and a vec4 one about as much as a scalar one. `batch` comes from the step state, so the same op reads the next batch every step.
// `batch_size` is the stride of the offset into the order and `count` the images gathered:
// the last partial batch of an epoch has count < batch_size.
// index legend: i image in the batch (< count), y row of the padded output (< H + 2 pad),
//   c column of the padded output (< W + 2 pad), b byte index into the packed pixels
// bindings: 0 images [ceil(N*H*W/4)] u32 (4 pixels a word, little-endian), 1 dataset_labels [N] u32,
//   2 order [N] u32, 3 state StepState, 4 x [count,1,H+2pad,W+2pad] f32, 5 labels [count] u32,
//   6 params {count, batch_size, height, width, pad, scale, shift}

override WORKGROUP: u32 = 64;

struct StepState {
  step: u32,
  batch: u32,
}

struct Params {
  count: u32,
  batch_size: u32,
  height: u32,
  width: u32,
  pad: u32,
  // x = pixel * scale + shift, with scale = 1 / (255 std) and shift = -mean / std.
  scale: f32,
  shift: f32,
}

@group(0) @binding(0) var<storage, read> images: array<u32>;
@group(0) @binding(1) var<storage, read> dataset_labels: array<u32>;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read> state: StepState;
@group(0) @binding(4) var<storage, read_write> x: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> labels: array<u32>;
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let out_h = params.height + 2u * params.pad;
  let out_w = params.width + 2u * params.pad;
  let row = gid.x + gid.y * groups.x * WORKGROUP;
  if (row >= params.count * out_h) {
    return;
  }
  let i = row / out_h;
  let y = row % out_h;
  let image = order[state.batch * params.batch_size + i];
  if (y == 0u) {
    labels[i] = dataset_labels[image];
  }

  let out = row * out_w;
  // Rows of the border (y < pad or y >= pad + H; unsigned, so y - pad wraps past H).
  let r = y - params.pad;
  if (r >= params.height) {
    for (var c = 0u; c < out_w; c++) {
      set_x(out + c, 0.0);
    }
    return;
  }
  let first = (image * params.height + r) * params.width;
  if (params.pad == 0u && params.width % 4u == 0u) {
    for (var j = 0u; j < params.width / 4u; j++) {
      let word = images[first / 4u + j];
      let pixels = vec4f((vec4u(word) >> vec4u(0u, 8u, 16u, 24u)) & vec4u(0xffu));
      x[out / 4u + j] = pixels * params.scale + params.shift;
    }
    return;
  }
  for (var c = 0u; c < params.pad; c++) {
    set_x(out + c, 0.0);
    set_x(out + params.pad + params.width + c, 0.0);
  }
  for (var c = 0u; c < params.width; c++) {
    let b = first + c;
    let pixel = (images[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
    set_x(out + params.pad + c, f32(pixel) * params.scale + params.shift);
  }
}

// x[i] = v, x viewed as floats.
fn set_x(i: u32, v: f32) {
  x[i / 4u][i % 4u] = v;
}
