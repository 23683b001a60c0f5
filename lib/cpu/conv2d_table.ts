/**
 * The table Conv2d (LeNet-5's C3 with LeCun's Table I, lib/layers/conv2d_table.ts) in the CPU
 * wing: the wing's dense Conv2d (lib/cpu/conv2d.ts) on a dense weight whose missing
 * connections hold 0, with the weights scattered from the table's layout before the forward
 * and the gradients of the connections gathered back after the backward
 * (kernels/cpu/conv2d_table.wgsl). On llvmpipe the dense product, 96/60 of the table's
 * multiply-adds, runs faster than the table kernels: every input texel it fetches feeds 16
 * output maps, and its weights come from a uniform binding. The missing connections' zeros
 * add exact zeros to the sums, and their gradients are computed and dropped. Tested against
 * the plain table kernels in tests/conv2d_table_test.ts.
 * @module
 */

import { grid, kernel, op, tensor, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "../layers/layer.ts";
import { conv2d } from "../layers/conv2d.ts";
import type { Conv2dTableConfig } from "../layers/conv2d_table.ts";
import { buildConv2d } from "./conv2d.ts";

/** Invocations per workgroup of the scatter and the gather. */
const WORKGROUP = 64;

/**
 * The wing's ops for a table Conv2d: scatter its weights into the dense weight, the dense
 * conv's forward; the dense conv's backward, gather the connections' gradients.
 */
export async function buildConv2dTable(layer: Layer, ctx: LayerContext): Promise<LayerOps> {
  const { inChannels, outChannels, kernelSize, table } = layer
    .config as unknown as Conv2dTableConfig;
  const { rt } = ctx;
  const taps = kernelSize * kernelSize;
  const slots = Uint32Array.from(
    table.flatMap((inputs, k) => inputs.map((c) => k * inChannels + c)),
  );
  const slot = tensor(rt, [slots.length], { dtype: "u32", label: "conv2d_table slots" });
  rt.device.queue.writeBuffer(slot.buffer, 0, slots);
  const shape = [outChannels, inChannels, kernelSize, kernelSize];
  // Made zero-filled: the missing connections stay 0.
  const dense = tensor(rt, shape, { label: "conv2d_table dense weight" });
  const denseGrad = tensor(rt, shape, { label: "conv2d_table dense dweight" });
  // The dense conv sees its own weight; it hands nothing to its neighbours, which know this
  // layer as a table conv.
  const conv = await buildConv2d(conv2d({ inChannels, outChannels, kernelSize }), {
    ...ctx,
    params: { weight: dense, bias: ctx.params.bias },
    grads: { weight: denseGrad, bias: ctx.grads.bias },
    before: undefined,
    after: undefined,
  });
  const u = uniform(rt, "conv2d_table", { taps, count: slots.length * taps });
  const [scatterK, gatherK] = await Promise.all([
    kernel(rt, "cpu/conv2d_table.wgsl", "scatter_weights", { WORKGROUP }),
    kernel(rt, "cpu/conv2d_table.wgsl", "gather_grads", { WORKGROUP }),
  ]);
  const groups = grid(slots.length * taps, WORKGROUP);
  const scatter = op(rt, scatterK, [ctx.params.weight, dense, slot, u], groups);
  const gather = op(rt, gatherK, [denseGrad, ctx.grads.weight, slot, u], groups);
  return {
    train: [scatter, ...conv.train],
    eval: [scatter, ...conv.eval],
    backward: [...conv.backward, gather],
    saved: { ...conv.saved, "dense weight": dense },
  };
}
