// Softmax cross-entropy of a batch of logits against integer labels, as PyTorch's
// nn.CrossEntropyLoss() (mean over the batch), and its gradient in the same pass:
//   loss = (1/B) sum_n (logsumexp_c z[n,c] - z[n,label[n]]),
//     logsumexp_c z[n,c] = m + log(sum_c exp(z[n,c] - m)) with m = max_c z[n,c] (no overflow)
//   dlogits[n,c] = (softmax(z[n])[c] - (c == label[n])) / B       (forward_backward only)
//   correct = #{n : argmax_c z[n,c] == label[n]}, argmax = the FIRST max as torch.argmax
// The batch is cut into groups of `group` consecutive rows (the last may be shorter); each
// group's mean loss and correct count go to their own row of metrics:
//   metrics[state.batch * rows_per_step + g] = (mean loss of group g, correct in group g)
// Training uses one group (group >= B: the batch's mean, row `batch` of the epoch); an
// evaluation step over many images writes one row per group of the seed's batch size, the
// very rows a pass at that batch size would write. A row past the end of metrics is not
// written, so a whole epoch's losses are read back at once; a label >= C gives a NaN loss.
// ONE workgroup per group: invocation t handles the group's rows t, t + WORKGROUP, ...; their
// partial sums meet in workgroup memory and invocation 0 adds them in a fixed order
// (deterministic, and the same sums whatever the number of groups in the dispatch).
// index legend: n row (image) of the batch, c class, g group (workgroup), t invocation in it
// bindings: 0 logits [B,C] f32, 1 labels [B] u32, 2 metrics [capacity,2] f32 (loss, correct),
//   3 state StepState, 4 params {batch, classes, group, rows_per_step},
//   5 dlogits [B,C] f32 (forward_backward only)

override WORKGROUP: u32 = 64;

struct StepState {
  step: u32,
  batch: u32,
}

struct Params {
  batch: u32,
  classes: u32,
  // Rows of the batch per metrics row.
  group: u32,
  // Metrics rows of a full step: the first row of this step is state.batch * rows_per_step.
  rows_per_step: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(3) var<storage, read> state: StepState;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;

var<workgroup> loss_part: array<f32, WORKGROUP>;
var<workgroup> correct_part: array<u32, WORKGROUP>;

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

// The rows [first, end) of group g.
fn group_rows(g: u32) -> vec2u {
  let first = g * params.group;
  return vec2u(first, min(params.batch, first + params.group));
}

// Invocation 0 adds the partial sums in order and writes the metrics row of group g.
fn write_metrics(g: u32, t: u32, loss: f32, correct: u32) {
  loss_part[t] = loss;
  correct_part[t] = correct;
  workgroupBarrier();
  if (t != 0u) {
    return;
  }
  var total = 0.0;
  var hits = 0u;
  for (var i = 0u; i < WORKGROUP; i++) {
    total += loss_part[i];
    hits += correct_part[i];
  }
  let rows = group_rows(g);
  let at = 2u * (state.batch * params.rows_per_step + g);
  if (at + 1u < arrayLength(&metrics)) {
    metrics[at] = total / f32(rows.y - rows.x);
    metrics[at + 1u] = f32(hits);
  }
}

// Evaluation: loss and correct count only.
@compute @workgroup_size(WORKGROUP)
fn forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let rows = group_rows(wid.x);
  var loss = 0.0;
  var correct = 0u;
  for (var n = rows.x + t; n < rows.y; n += WORKGROUP) {
    let row = softmax_row(n);
    loss += row_loss(n, row);
    correct += u32(row.argmax == labels[n]);
  }
  write_metrics(wid.x, t, loss, correct);
}

// Training: the same, plus the gradient of the batch's mean loss with respect to the logits
// (the mean over all B rows, whatever the groups).
@compute @workgroup_size(WORKGROUP)
fn forward_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  let rows = group_rows(wid.x);
  var loss = 0.0;
  var correct = 0u;
  let inv_batch = 1.0 / f32(params.batch);
  for (var n = rows.x + t; n < rows.y; n += WORKGROUP) {
    let row = softmax_row(n);
    let label = labels[n];
    loss += row_loss(n, row);
    correct += u32(row.argmax == label);
    let inv_sum = 1.0 / row.sum;
    let base = n * params.classes;
    for (var c = 0u; c < params.classes; c++) {
      let p = exp(logits[base + c] - row.max) * inv_sum;
      dlogits[base + c] = (p - select(0.0, 1.0, c == label)) * inv_batch;
    }
  }
  write_metrics(wid.x, t, loss, correct);
}
