/**
 * Linear in the CPU wing: y = x W^T + b and its backward as register-blocked matrix products
 * over texture mirrors of x, the weight and dy (kernels/cpu/linear.wgsl says why this shape
 * pays on llvmpipe). Built for Linear layers and for conv2dAsLinear (LeNet-5's C5), whose
 * tensors it reads as [N, IN] and [N, OUT] whatever their shapes. Tested against the plain
 * tier's kernels (lib/layers/linear.ts) and the float64 reference in tests/linear_cpu_test.ts;
 * the activation fused after it as in the plain tier (tests/linear_activation_test.ts).
 *
 * The activation runs fused in the forward only: its backward is the activation's own
 * kernel, which writes the gradient before it (g) for the dy mirror's copy. Fused in the
 * backward as well, every block of the products would read a mirror of y beside dy's (half
 * as many loads again, repeated in every block that reads a row), and y would need a copy of
 * its own: LeNet-5's C5 backward took 0.62 ms that way against 0.30 + 0.04 ms for the
 * products and the tanh apart (bench:profile --model lenet5 --kernels cpu, llvmpipe, GL).
 * @module
 */

import { grid, type Op, op, type Tensor, tensor, uniform, view } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "../layers/layer.ts";
import type { LinearConfig } from "../layers/linear.ts";
import { sigmoid, tanh } from "../layers/activation.ts";
import { relu } from "../layers/relu.ts";
import { cpuKernel, textureMirror } from "./texture.ts";

/** Invocations per workgroup: one SIMD vector, so that a small product spreads over the cores. */
const WORKGROUP = 8;
/**
 * Multiply-adds of a forward (N*IN*OUT) below which the plain kernels are faster here: the
 * wing's three texture copies cost more than its products save (llvmpipe, forward + backward,
 * interleaved medians: 84 -> 10 at batch 32, 26,880, is 12% slower in the wing; 120 -> 84 at
 * batch 8, 80,640, 16% faster; 400 -> 120 at batch 1, 48,000, 30% faster).
 */
export const LINEAR_WING_MIN_MACS = 32768;

/** The activation layers, by the kernels' ACTIVATION code, for their backward. */
const ACTIVATION_LAYERS: Record<number, () => Layer> = { 1: tanh, 2: sigmoid, 3: relu };

/** True when the wing's Linear beats the plain one for `layer` at this batch (see above). */
export function linearPays(layer: Layer, ctx: LayerContext): boolean {
  const { inFeatures, outFeatures } = layer.config as unknown as LinearConfig;
  return ctx.x.shape[0] * inFeatures * outFeatures >= LINEAR_WING_MIN_MACS;
}

/** The smallest power of two of quads (4 rows or columns) that covers n, at most `most`. */
function quadsFor(n: number, most: number): number {
  let quads = 1;
  while (quads * 4 < n && quads < most) quads *= 2;
  return quads;
}

/** Blocks of `quads` that cover a [rows, cols] output. */
function blocks(rows: number, cols: number, quads: { rows: number; cols: number }): number {
  return Math.ceil(rows / (4 * quads.rows)) * Math.ceil(cols / (4 * quads.cols));
}

/** `t` seen as whole texels (4 floats each) for the kernels' vec4 stores (no float past t's end is written). */
function asTexels(t: Tensor): Tensor {
  return view(t, t.offset, [Math.ceil(t.size / 4), 4], `${t.label} (vec4)`);
}

// forward:  x [N,IN], weight [OUT,IN], bias [OUT] -> y [N,OUT]
// backward: dy [N,OUT], weight -> dx [N,IN];  dy, x -> dweight [OUT,IN], dbias [OUT]
/**
 * The tuned Linear ops for `layer` (a Linear, or a conv2dAsLinear: `config` holds inFeatures,
 * outFeatures and the fused activation) built for `ctx`. Forward: copy x and the weight to
 * their texture mirrors, then one dispatch; backward: with an activation, its backward's
 * dispatch (g from dy and y), then copy g (else dy) to its mirror, then one dispatch that
 * writes dx (when a layer below needs it), dweight and dbias. The backward reads the mirrors
 * of x and of the weight that its step's forward refreshed (`saved`).
 */
export async function buildLinear(layer: Layer, ctx: LayerContext): Promise<LayerOps> {
  const { inFeatures: ins, outFeatures: outs, activation } = layer
    .config as unknown as LinearConfig;
  const { rt, x, y, dy, dx, params, grads } = ctx;
  const batch = x.shape[0];
  const what = `${layer.type}(${ins} -> ${outs}) in the CPU wing`;
  if (x.size !== batch * ins) throw new Error(`${what}: input [${x.shape}] is not [N, ${ins}]`);
  for (const [name, t] of [["y", y], ["dy", dy]] as const) {
    if (t.size !== batch * outs) {
      throw new Error(`${what}: ${name} [${t.shape}] is not [${batch}, ${outs}]`);
    }
  }
  if (dx && dx.size !== x.size) throw new Error(`${what}: dx [${dx.shape}] is not [${x.shape}]`);
  // Blocks of (row quads, column quads): the forward's rows are images, few at batch 32,
  // so its blocks are 8 rows high (more invocations); dx's and dw's are up to 16 x 16.
  const forwardQuads = { rows: quadsFor(batch, 2), cols: quadsFor(outs, 4) };
  const dxQuads = { rows: quadsFor(batch, 4), cols: quadsFor(ins, 4) };
  const dwQuads = { rows: quadsFor(outs, 4), cols: quadsFor(ins, 4) };
  const constants = {
    WORKGROUP,
    FORWARD_ROWS: forwardQuads.rows,
    FORWARD_COLS: forwardQuads.cols,
    DX_ROWS: dxQuads.rows,
    DX_COLS: dxQuads.cols,
    DW_ROWS: dwQuads.rows,
    DW_COLS: dwQuads.cols,
    X_ALIGNED: ins % 4 === 0 ? 1 : 0,
    DY_ALIGNED: outs % 4 === 0 ? 1 : 0,
  };
  const [forwardK, backwardK] = await Promise.all([
    cpuKernel(rt, "linear.wgsl", "forward", { ...constants, ACTIVATION: activation }),
    cpuKernel(rt, "linear.wgsl", "backward", constants),
  ]);
  // g, the gradient before the activation: its own backward writes it from y (x: y too,
  // for relu's, which reads x > 0: the same as y > 0; its forward is built but unused);
  // dy itself without an activation.
  const g = activation ? tensor(rt, dy.shape, { label: `${dy.label} before the activation` }) : dy;
  const activationOps = activation
    ? await ACTIVATION_LAYERS[activation]().build({
      rt,
      x: y,
      y,
      dy,
      dx: g,
      params: {},
      grads: {},
    })
    : null;
  const dxGroups = dx ? Math.ceil(blocks(batch, ins, dxQuads) / WORKGROUP) : 0;
  const dwGroups = Math.ceil(blocks(outs, ins, dwQuads) / WORKGROUP);
  // Fields as in the WGSL struct Params, in its order.
  const u = uniform(rt, "linear (CPU wing)", {
    batch,
    in_features: ins,
    out_features: outs,
    dx_groups: dxGroups,
  });
  const xt = textureMirror(rt, x);
  const wt = textureMirror(rt, params.weight);
  const gt = textureMirror(rt, g);
  const forward = op(
    rt,
    forwardK,
    [xt, wt, params.bias, asTexels(y), u],
    grid(blocks(batch, outs, forwardQuads), WORKGROUP),
  );
  // Without a dx (Linear as the first layer), a stand-in is bound and no workgroup writes it.
  const dxOut = dx ? asTexels(dx) : tensor(rt, [1, 4], { label: "linear unused dx" });
  const backward: Op[] = [
    ...(activationOps?.backward ?? []),
    gt.copy,
    op(
      rt,
      backwardK,
      [xt, wt, gt, asTexels(grads.weight), grads.bias, u, dxOut],
      grid((dxGroups + dwGroups) * WORKGROUP, WORKGROUP),
    ),
  ];
  const train = [xt.copy, wt.copy, forward];
  // The backward reads x and the weight from the mirrors the forward copied them to.
  const saved = { "x (texture mirror)": x, "weight (texture mirror)": params.weight };
  return { train, eval: train, backward, saved };
}
