/**
 * Classification metrics from logits, computed in float64 on the CPU: the notebook's loss (the
 * mean of per-batch mean cross-entropies), accuracy, the confusion matrix and per-class
 * precision and recall.
 * @module
 */

/** What evaluate reports. */
export interface Evaluation {
  /** Mean over batches of `lossBatchSize` of the batch's mean cross-entropy (the notebook's). */
  loss: number;
  /** Percent of rows whose first largest logit is the label. */
  accuracy: number;
  /** confusion[true][predicted] = count. */
  confusion: number[][];
  perClass: { label: number; precision: number; recall: number; support: number }[];
  /** Predicted class per row. */
  predictions: Uint8Array;
}

/**
 * Scores logits [N, C] against labels [N].
 *
 * @example
 * ```ts
 * const e = evaluateLogits(new Float32Array([2, 1, 0, 3]), new Uint8Array([0, 1]), { classes: 2 });
 * e.accuracy; // 100
 * ```
 */
export function evaluateLogits(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  options: { classes: number; lossBatchSize?: number },
): Evaluation {
  const { classes } = options;
  const n = labels.length;
  if (logits.length !== n * classes) {
    throw new Error(
      `evaluateLogits: ${logits.length} logits for ${n} labels of ${classes} classes`,
    );
  }
  const batch = options.lossBatchSize ?? 32;
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  const predictions = new Uint8Array(n);
  let batchLoss = 0, lossSum = 0, batches = 0, correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0, max = -Infinity;
    for (let c = 0; c < classes; c++) {
      const z = logits[i * classes + c];
      if (z > max) [max, best] = [z, c];
    }
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[i * classes + c] - max);
    batchLoss += max + Math.log(sum) - logits[i * classes + labels[i]];
    predictions[i] = best;
    confusion[labels[i]][best]++;
    if (best === labels[i]) correct++;
    if ((i + 1) % batch === 0 || i === n - 1) {
      lossSum += batchLoss / ((i % batch) + 1);
      batchLoss = 0;
      batches++;
    }
  }
  const perClass = confusion.map((row, label) => {
    const truePositives = row[label];
    const predicted = confusion.reduce((a, r) => a + r[label], 0);
    const support = row.reduce((a, b) => a + b, 0);
    return {
      label,
      precision: predicted > 0 ? truePositives / predicted : 0,
      recall: support > 0 ? truePositives / support : 0,
      support,
    };
  });
  return {
    loss: lossSum / Math.max(1, batches),
    accuracy: (100 * correct) / Math.max(1, n),
    confusion,
    perClass,
    predictions,
  };
}
