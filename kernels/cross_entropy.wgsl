// Softmax cross-entropy of a batch of logits against integer labels, as PyTorch's
// nn.CrossEntropyLoss(reduction="none"), and the gradient of the batch's mean loss
// (nn.CrossEntropyLoss(), reduction="mean") in the same pass. One invocation per image n:
//   loss[n] = logsumexp_c z[n,c] - z[n,label[n]],
//     logsumexp_c z[n,c] = m + log(sum_c exp(z[n,c] - m)) with m = max_c z[n,c] (no overflow)
//   correct[n] = (argmax_c z[n,c] == label[n]), argmax = the FIRST max as torch.argmax
//   dlogits[n,c] = (softmax(z[n])[c] - (c == label[n])) / B        (forward_backward only)
// Each image writes its own metrics row, at its place in the pass:
//   metrics[state.batch * step_images + n] = (loss[n], correct[n] as 0.0 or 1.0)
// so a pass's rows do not depend on its step size, and the per-batch means of the seed are
// formed from them on the CPU (lib/train.ts). A row past the end of metrics is not written;
// a label >= C gives a NaN loss.
// index legend: n row (image) of the batch, c class
// bindings: 0 logits [B,C] f32, 1 labels [B] u32, 2 metrics [capacity,2] f32 (loss, correct),
//   3 state StepState, 4 params {batch, classes, step_images},
//   5 dlogits [B,C] f32 (forward_backward only)

override WORKGROUP: u32 = 64;

struct StepState {
  step: u32,
  batch: u32,
}

struct Params {
  // B: images of this step.
  batch: u32,
  classes: u32,
  // Images of a full step of the pass: this step's first metrics row is state.batch * this.
  step_images: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(3) var<storage, read> state: StepState;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;

// What one row needs: its max logit m, sum_c exp(z - m), and the first index of the max.
struct Row {
  max: f32,
  sum: f32,
  argmax: u32,
}

fn softmax_row(n: u32) -> Row {
  let base = n * params.classes;
  var row = Row(logits[base], 0.0, 0u);
  for (var c = 1u; c < params.classes; c++) {
    let z = logits[base + c];
    // Strictly greater: a tie keeps the first index.
    if (z > row.max) {
      row.max = z;
      row.argmax = c;
    }
  }
  for (var c = 0u; c < params.classes; c++) {
    row.sum += exp(logits[base + c] - row.max);
  }
  return row;
}

// loss of row n = m + log(sum) - z[label] (NaN when the label is not a class).
fn row_loss(n: u32, row: Row) -> f32 {
  let label = labels[n];
  if (label >= params.classes) {
    // A quiet NaN made at run time: browsers reject a constant expression that is NaN.
    var nan_bits = 0x7fc00000u;
    return bitcast<f32>(nan_bits);
  }
  return (row.max - logits[n * params.classes + label]) + log(row.sum);
}

// Writes image n's metrics row (loss, correct) and returns its softmax row.
fn write_metrics(n: u32) -> Row {
  let row = softmax_row(n);
  let at = 2u * (state.batch * params.step_images + n);
  if (at + 1u < arrayLength(&metrics)) {
    metrics[at] = row_loss(n, row);
    metrics[at + 1u] = select(0.0, 1.0, row.argmax == labels[n]);
  }
  return row;
}

// Evaluation: each image's loss and correct flag only.
@compute @workgroup_size(WORKGROUP)
fn forward(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  if (n >= params.batch) {
    return;
  }
  write_metrics(n);
}

// Training: the same, plus the gradient of the batch's mean loss with respect to the logits.
@compute @workgroup_size(WORKGROUP)
fn forward_backward(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  if (n >= params.batch) {
    return;
  }
  let row = write_metrics(n);
  let label = labels[n];
  let inv_sum = 1.0 / row.sum;
  let inv_batch = 1.0 / f32(params.batch);
  let base = n * params.classes;
  for (var c = 0u; c < params.classes; c++) {
    let p = exp(logits[base + c] - row.max) * inv_sum;
    dlogits[base + c] = (p - select(0.0, 1.0, c == label)) * inv_batch;
  }
}
