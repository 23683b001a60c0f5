import assert from "node:assert/strict";
import { lenet, lenet5 } from "../lib/models.ts";
import { summarize, summaryTotals } from "../lib/summary.ts";

Deno.test("summarize counts torchinfo's mult-adds and sizes, by hand for both models", () => {
  // lenet at 32: conv (272 params x 13x13) + BN (32) + conv (8,224 x 5x5) + BN (64) + linear (330).
  const s = summarize(lenet(), 32);
  assert.equal(s.multAdds, (272 * 169 + 32 + 8224 * 25 + 64 + 330) * 32);
  assert.equal(s.inputMB, (32 * 784 * 4) / 1e6);
  // Outputs: 3 of [16,13,13], 3 of [32,5,5], pool and flatten [32], logits [10]; values + grads.
  assert.equal(s.forwardBackwardMB, (32 * (3 * 2704 + 3 * 800 + 2 * 32 + 10) * 4 * 2) / 1e6);
  assert.equal(s.paramsMB, (8922 * 4) / 1e6);
  assert.deepEqual(summaryTotals(s).slice(1), [
    "Total mult-adds (M): 8.06",
    "Input size (MB): 0.10",
    "Forward/backward pass size (MB): 2.71",
    "Params size (MB): 0.04",
    "Estimated Total Size (MB): 2.85",
  ]);
  // LeNet-5, one image: C1 156 x 28x28, C3 2,416 x 10x10, C5 48,120 x 1x1, F6 10,164, out 850.
  assert.equal(summarize(lenet5(), 1).multAdds, 156 * 784 + 2416 * 100 + 48120 + 10164 + 850);
});
