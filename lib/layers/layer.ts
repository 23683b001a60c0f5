/**
 * What a layer is: its parameters (PyTorch names, shapes, init) and a `build` that makes
 * the dispatches of its forward (training and eval) and backward once, for tensors the
 * model has allocated. No autograd: each layer owns its exact backward.
 * @module
 */

import type { Op, Runtime, Tensor } from "../runtime.ts";

/** How a parameter starts: uniform in [-bound, bound] (PyTorch's kaiming-uniform default) or a constant. */
export type Init = { uniform: number } | { constant: number };

/** One parameter or buffer of a layer, named as in PyTorch's state_dict (`weight`, `running_var`). */
export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
  /** False for buffers the optimizer must not touch (BatchNorm's running statistics). */
  trainable: boolean;
}

/** The tensors a layer reads and writes, allocated by the model. Shapes include the batch. */
export interface LayerContext {
  rt: Runtime;
  /** Input [N, ...]. */
  x: Tensor;
  /** Output [N, ...]. */
  y: Tensor;
  /** Gradient of the loss w.r.t. the output (same shape as y). */
  dy: Tensor;
  /** Gradient w.r.t. the input, or null when no layer below needs it. */
  dx: Tensor | null;
  /** The layer's parameters and buffers, views into the model's flat parameter buffer. */
  params: Record<string, Tensor>;
  /** The gradients of the trainable parameters, views into the flat gradient buffer. */
  grads: Record<string, Tensor>;
  /**
   * The layers next to this one in the model, when there are: the one that writes x (and
   * reads dx) and the one that reads y (and writes dy). A tier may hand the tensors between
   * two layers it builds itself in a form of its own (see {@linkcode LayerOps}).
   */
  before?: Layer;
  after?: Layer;
}

/**
 * The dispatches of one layer, in the order they run, and what its forward leaves for its
 * backward: `backward` reads the context's tensors (x, y, dy, params) and `saved`, which only
 * a forward (`train`, or `eval` where it writes them too) of the same step has written. Run a
 * forward before every backward.
 *
 * A tensor that a tier hands between two of its own layers (`before`, `after`) in a form of
 * its own, or that it never forms because it runs the two layers' work in one kernel, is not
 * written plain by `train` and `backward`: y holds the output after `eval`, dx and dy hold
 * nothing in particular. Every other tensor is written as it says here.
 */
export interface LayerOps {
  /** Forward in training mode (BatchNorm: batch statistics and the running update). */
  train: Op[];
  /** Forward in eval mode (BatchNorm: running statistics). */
  eval: Op[];
  /** Writes dx (when not null) and every gradient in `grads` (overwrites, no accumulation). */
  backward: Op[];
  /**
   * The tensors the forward writes for the backward besides y, by what they hold:
   * BatchNorm's batch statistics, max pooling's argmax, the CPU wing's staged weights and
   * packed input. Empty when the backward reads only the context's tensors.
   */
  saved: Record<string, Tensor>;
}

/** A layer: a plain value that describes itself and builds its ops. */
export interface Layer {
  /** PyTorch's class name, for the summary: "Conv2d", "BatchNorm2d", "ReLU". */
  type: string;
  params: ParamSpec[];
  /** Counters saved as I64 in checkpoints, equal to the number of training steps (`num_batches_tracked`). */
  counters?: string[];
  /** The output shape for an input shape (both with the batch first). */
  outputShape(input: number[]): number[];
  /** Multiply-adds x2 of one forward pass for this input shape, for benchmarks. */
  flops?(input: number[]): number;
  /** True when y is x with another shape (Flatten): the model passes views, build makes no ops. */
  alias?: boolean;
  /**
   * The kernel family whose ops `build` makes ("conv2d": kernels/conv2d.wgsl): with `config`,
   * what a tier recognizes a layer by (see lib/tier.ts). Absent where no tier replaces it.
   */
  family?: string;
  /**
   * What the layer was made with (Conv2d: inChannels, outChannels, kernelSize, stride,
   * padding), so that a tier can build its own ops for it.
   */
  config?: Readonly<Record<string, number | boolean | readonly (readonly number[])[]>>;
  /** Makes the layer's plain ops for these tensors (pipelines come from the runtime's cache). */
  build(ctx: LayerContext): Promise<LayerOps>;
}
