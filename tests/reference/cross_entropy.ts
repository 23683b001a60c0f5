/**
 * Reference (float64) of softmax cross-entropy, as kernels/cross_entropy.wgsl and PyTorch's
 * nn.CrossEntropyLoss() (mean over the batch).
 * @module
 */

/** The loss of a batch, its gradient and the correct count. */
export interface CrossEntropyResult {
  /** Mean over the batch of logsumexp(z[n]) - z[n, label[n]]. */
  loss: number;
  /** d loss / d logits [B, C] = (softmax(z[n]) - onehot(label[n])) / B. */
  dlogits: Float64Array;
  /** Rows whose first max index equals the label (torch.argmax picks the first max). */
  correct: number;
}

/** Cross-entropy of logits [B, C] (row-major) against labels [B]. */
export function crossEntropyReference(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  options: { classes: number },
): CrossEntropyResult {
  const { classes } = options;
  const batch = labels.length;
  if (logits.length !== batch * classes) {
    throw new Error(`crossEntropyReference: ${logits.length} logits for [${batch}, ${classes}]`);
  }
  const dlogits = new Float64Array(batch * classes);
  let loss = 0, correct = 0;
  for (let n = 0; n < batch; n++) {
    const base = n * classes;
    let max = logits[base], argmax = 0;
    for (let c = 1; c < classes; c++) {
      if (logits[base + c] > max) {
        max = logits[base + c];
        argmax = c;
      }
    }
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[base + c] - max);
    loss += max + Math.log(sum) - logits[base + labels[n]];
    if (argmax === labels[n]) correct++;
    for (let c = 0; c < classes; c++) {
      const p = Math.exp(logits[base + c] - max) / sum;
      dlogits[base + c] = (p - (c === labels[n] ? 1 : 0)) / batch;
    }
  }
  return { loss: loss / batch, dlogits, correct };
}
