/**
 * A model summary with torchinfo's figures: per layer the output shape and parameters, and in
 * total the parameters, mult-adds and the sizes (MB, 10^6 bytes, f32) of the input, of the
 * forward/backward pass (every layer's output, twice: the values and their gradients), of the
 * parameters, and their sum. Mult-adds count as torchinfo does: a convolution's parameters
 * times its output positions, any other layer's parameters times the batch.
 * @module
 */

import { type Model, type SummaryRow, summaryRows } from "./models.ts";

/** The summary of a model at one batch size. */
export interface ModelSummary {
  rows: SummaryRow[];
  /** [batch, ...model.input]. */
  inputShape: number[];
  trainableParams: number;
  multAdds: number;
  inputMB: number;
  forwardBackwardMB: number;
  paramsMB: number;
  totalMB: number;
}

const BYTES = 4; // f32

/**
 * torchinfo's summary figures of `model` at `batch`.
 *
 * @example
 * ```ts
 * import { lenet } from "./models.ts";
 * import { summarize } from "./summary.ts";
 * const s = summarize(lenet(), 32);
 * s.multAdds; // 8,063,808: (272 * 13 * 13 + 32 + 8,224 * 5 * 5 + 64 + 330) * 32
 * ```
 */
export function summarize(model: Model, batch: number): ModelSummary {
  const rows = summaryRows(model, batch);
  const inputShape = [batch, ...model.input];
  const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  let multAdds = 0, outputs = 0;
  for (const row of rows) {
    const positions = row.type.startsWith("Conv") ? count(row.outputShape.slice(2)) : 1;
    multAdds += row.params * batch * positions;
    outputs += count(row.outputShape);
  }
  const trainableParams = model.layout.trainableCount;
  const mb = (elements: number) => (elements * BYTES) / 1e6;
  const inputMB = mb(count(inputShape));
  const forwardBackwardMB = mb(2 * outputs);
  const paramsMB = mb(trainableParams);
  return {
    rows,
    inputShape,
    trainableParams,
    multAdds,
    inputMB,
    forwardBackwardMB,
    paramsMB,
    totalMB: inputMB + forwardBackwardMB + paramsMB,
  };
}

/**
 * The totals as torchinfo prints them under its table.
 *
 * @example
 * ```ts
 * import { lenet } from "./models.ts";
 * import { summarize, summaryTotals } from "./summary.ts";
 * summaryTotals(summarize(lenet(), 32))[1]; // "Total mult-adds (M): 8.06"
 * ```
 */
export function summaryTotals(s: ModelSummary): string[] {
  return [
    `Total trainable parameters: ${s.trainableParams.toLocaleString("en-US")}`,
    `Total mult-adds (M): ${(s.multAdds / 1e6).toFixed(2)}`,
    `Input size (MB): ${s.inputMB.toFixed(2)}`,
    `Forward/backward pass size (MB): ${s.forwardBackwardMB.toFixed(2)}`,
    `Params size (MB): ${s.paramsMB.toFixed(2)}`,
    `Estimated Total Size (MB): ${s.totalMB.toFixed(2)}`,
  ];
}
