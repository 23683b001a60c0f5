/**
 * A Conv2d whose kernel covers its whole input (LeNet-5's C5: 16 maps of 5x5 -> 120 maps of
 * 1x1) is a matrix product: y[n,k] = b[k] + sum_(c,r,s) x[n,c,r,s] * w[k,c,r,s], with x seen
 * as [N, C*R*R] and the weight [K,C,R,R] seen as [K, C*R*R], the same bytes in the same
 * order. So this layer keeps Conv2d's parameters (PyTorch's names, shapes and init) and runs
 * the Linear kernels (kernels/linear.wgsl) on views of its tensors: the convolution kernels,
 * made for many output pixels, would find only one here. The activation after it can run
 * fused in, as after a Linear (LeNet-5's C5 -> tanh).
 * @module
 */

import { type Tensor, view } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";
import { linear } from "./linear.ts";
import { activationCode, type FusedActivation, typeWith } from "./fused_activation.ts";

/** The Conv2d: C input maps of R x R, K output maps of 1 x 1 (stride 1, no padding). */
export interface Conv2dAsLinearOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  /**
   * An activation applied to the output, fused in (as linear()'s): the layer is the Conv2d
   * then nn.Tanh() (or Sigmoid, ReLU), type "Conv2d+Tanh", standing for two modules.
   */
  activation?: FusedActivation;
}

/**
 * `nn.Conv2d(C, K, R)` applied to an R x R input: x [N,C,R,R] -> y [N,K,1,1]. Parameters
 * (PyTorch names): `weight` [K,C,R,R] and `bias` [K], uniform in +-1/sqrt(C*R*R). One
 * dispatch forward, one backward (dx, dweight and dbias together), as Linear.
 *
 * @example
 * ```ts
 * const c5 = conv2dAsLinear({ inChannels: 16, outChannels: 120, kernelSize: 5 });
 * c5.outputShape([32, 16, 5, 5]); // [32, 120, 1, 1]
 * conv2dAsLinear({ inChannels: 16, outChannels: 120, kernelSize: 5, activation: "tanh" })
 *   .type; // "Conv2d+Tanh"
 * ```
 */
export function conv2dAsLinear(options: Conv2dAsLinearOptions): Layer {
  const { inChannels, outChannels, kernelSize, activation } = options;
  const features = inChannels * kernelSize * kernelSize;
  activationCode(`Conv2d(${inChannels}, ${outChannels}, ${kernelSize})`, activation);
  const inner = linear(features, outChannels, { activation });
  const shape = [outChannels, inChannels, kernelSize, kernelSize];
  return {
    type: typeWith("Conv2d", activation),
    // Linear's specs (uniform +-1/sqrt(C*R*R), as Conv2d's), with the conv weight's shape.
    params: inner.params.map((p) => p.name === "weight" ? { ...p, shape } : p),
    outputShape: (input) => {
      const [n, c, h, w] = input;
      if (input.length !== 4 || c !== inChannels || h !== kernelSize || w !== kernelSize) {
        throw new Error(
          `Conv2d(${inChannels}, ${outChannels}, ${kernelSize}) as a matrix product: input ` +
            `[${input}] is not [N, ${inChannels}, ${kernelSize}, ${kernelSize}]`,
        );
      }
      return [n, outChannels, 1, 1];
    },
    flops: ([n]) => 2 * n * features * outChannels,
    // A tier builds it as the Linear it runs as (family and config of linear()), not as a Conv2d.
    family: "linear",
    config: inner.config,
    build: (ctx) => build(ctx, inner, features),
  };
}

// x [N,C,R,R] as [N,CRR], weight [K,C,R,R] as [K,CRR] -> y [N,K,1,1] as [N,K]
function build(ctx: LayerContext, inner: Layer, features: number): Promise<LayerOps> {
  const n = ctx.x.shape[0];
  const k = ctx.y.shape[1];
  const as = (t: Tensor, shape: number[]) => view(t, t.offset, shape, t.label);
  return inner.build({
    rt: ctx.rt,
    x: as(ctx.x, [n, features]),
    y: as(ctx.y, [n, k]),
    dy: as(ctx.dy, [n, k]),
    dx: ctx.dx && as(ctx.dx, [n, features]),
    params: { weight: as(ctx.params.weight, [k, features]), bias: ctx.params.bias },
    grads: { weight: as(ctx.grads.weight, [k, features]), bias: ctx.grads.bias },
  });
}
