/**
 * Flatten: [N, C, H, W] -> [N, C*H*W]. The output is the input with another shape, so the
 * model passes a view and the layer has no kernel and no ops.
 * @module
 */

import type { Layer } from "./layer.ts";

/**
 * `nn.Flatten()` (start_dim 1): keeps the batch dimension and joins the others.
 *
 * @example
 * ```ts
 * const layer = flatten();
 * layer.outputShape([32, 32, 1, 1]); // [32, 32]
 * ```
 */
export function flatten(): Layer {
  return {
    type: "Flatten",
    params: [],
    alias: true,
    outputShape: ([n, ...rest]) => [n, rest.reduce((a, b) => a * b, 1)],
    build: () => Promise.resolve({ train: [], eval: [], backward: [], saved: {} }),
  };
}
