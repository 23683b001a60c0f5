/**
 * Models: a table of named layers (PyTorch's module names) composed in sequence, their
 * flat parameter layout, and `buildGraph`, which allocates the activations for one batch
 * size and makes every op of the forward and backward passes once.
 * @module
 */

import type { Layer, LayerOps } from "./layers/layer.ts";
import { conv2d } from "./layers/conv2d.ts";
import { batchnorm2d } from "./layers/batchnorm2d.ts";
import { adaptiveAvgPool2d } from "./layers/adaptive_avg_pool2d.ts";
import { flatten } from "./layers/flatten.ts";
import { linear } from "./layers/linear.ts";
import { avgPool2d, maxPool2d, type PoolActivation } from "./layers/pool2d.ts";
import { FUSED_ACTIVATIONS, type FusedActivation } from "./layers/fused_activation.ts";
import { conv2dTable, LECUN_C3_TABLE } from "./layers/conv2d_table.ts";
import { conv2dAsLinear } from "./layers/conv2d_as_linear.ts";
import { layoutParams, type ParamLayout } from "./params.ts";
import { buildLayer } from "./tier.ts";
import { IMAGE_SIDE } from "./data_gpu.ts";
import { checked, numel, type Op, type Runtime, type Tensor, tensor, view } from "./runtime.ts";

/** A layer under its PyTorch module name (`features.0`). */
export interface NamedLayer {
  name: string;
  layer: Layer;
}

/** A model: layers in order, the input they expect, and where each parameter lives. */
export interface Model {
  /** "lenet" (the seed's modern LeNet) or "lenet5" (the classic LeNet-5). */
  name: string;
  layers: NamedLayer[];
  /** One example's input [C,H,W], after the zero border `pad` that the data gather adds. */
  input: number[];
  /** Zero border the gather adds around each 28x28 image. */
  pad: number;
  layout: ParamLayout;
}

/**
 * Composes named layers into a model and lays out their parameters.
 *
 * @example
 * ```ts
 * import { linear } from "./layers/linear.ts";
 *
 * const m = sequential("tiny", [["fc", linear(4, 2)]], { input: [4], pad: 0 });
 * m.layout.trainableCount; // 10
 * ```
 */
export function sequential(
  name: string,
  layers: [string, Layer][],
  options: { input: number[]; pad: number },
): Model {
  const named = layers.map(([n, layer]) => ({ name: n, layer }));
  const specs = named.flatMap(({ name: n, layer }) =>
    layer.params.map((p) => ({ ...p, name: `${n}.${p.name}` }))
  );
  return {
    name,
    layers: named,
    input: options.input,
    pad: options.pad,
    layout: layoutParams(specs),
  };
}

/**
 * The seed's modern LeNet: Conv(1->16, k4, s2), BN, ReLU, Conv(16->32, k4, s2), BN, ReLU,
 * AdaptiveAvgPool(1x1), Flatten, Linear(32->10); 8,922 parameters. BatchNorm and the ReLU
 * after it run as one fused layer (`features.1` stands for features.1 and features.2).
 */
export function lenet(): Model {
  return sequential("lenet", [
    ["features.0", conv2d({ inChannels: 1, outChannels: 16, kernelSize: 4, stride: 2 })],
    ["features.1", batchnorm2d(16, { relu: true })],
    ["features.3", conv2d({ inChannels: 16, outChannels: 32, kernelSize: 4, stride: 2 })],
    ["features.4", batchnorm2d(32, { relu: true })],
    ["features.6", adaptiveAvgPool2d()],
    ["classifier.0", flatten()],
    ["classifier.1", linear(32, 10)],
  ], { input: [1, IMAGE_SIDE, IMAGE_SIDE], pad: 0 });
}

/** The choices of the classic LeNet-5 (train's --activation, --pool, --c3). */
export interface ModelOptions {
  /** The activation after every layer but the last: "tanh" (the paper's), "sigmoid" or "relu". */
  activation?: string;
  /** The subsampling layers S2 and S4: "avg" (the paper's) or "max". */
  pool?: string;
  /** C3: "full" (a dense Conv2d(6, 16, 5), as PyTorch ports have it) or "lecun" (Table I). */
  c3?: string;
}

/** S2 and S4, with the activation before them fused in. */
const POOLS: Record<string, (activation: PoolActivation) => Layer> = {
  avg: (activation) => avgPool2d({ kernelSize: 2, activation }),
  max: (activation) => maxPool2d({ kernelSize: 2, activation }),
};
const C3S: Record<string, () => Layer> = {
  full: () => conv2d({ inChannels: 6, outChannels: 16, kernelSize: 5 }),
  lecun: () => conv2dTable({ inChannels: 6, table: LECUN_C3_TABLE, kernelSize: 5 }),
};

/** `table[name]`, or an error that lists the choices. */
function choice<T>(table: Record<string, T>, name: string, what: string): T {
  if (!Object.hasOwn(table, name)) {
    throw new Error(
      `lenet5: unknown ${what} "${name}" (choices: ${Object.keys(table).join(", ")})`,
    );
  }
  return table[name];
}

/**
 * The classic LeNet-5 of the seed's table, with the module names of the seed's PyTorch
 * `LeNet5` (seed_reference.py): 32x32 input (the 28x28 digit with a zero border of 2),
 * C1 Conv(1->6, 5x5) -> 6x28x28, S2 pool 2x2 -> 14x14, C3 Conv(6->16, 5x5) -> 10x10, S4 pool
 * -> 5x5, C5 Conv(16->120, 5x5) -> 1x1, F6 Linear(120->84), output Linear(84->10), with the
 * activation after C1, C3, C5 and F6: 61,706 parameters (60,806 with `c3: "lecun"`).
 * Defaults are the paper's choices: tanh, average pooling, and a full C3.
 *
 * The border is C1's zero padding, as in PyTorch's Conv2d(1, 6, 5, padding=2): the conv
 * kernel skips the loads of the pixels in the padding, which makes it a few percent faster
 * here than a 32x32 input padded by the data gather (Model.pad = 2, the same function; see
 * bench/lenet5_bench.ts). C5, whose 5x5 kernel covers its 5x5 input, runs as the matrix
 * product it is (lib/layers/conv2d_as_linear.ts), with Conv2d's parameters. Every activation
 * runs fused into a neighbour, the same floats: after C1 and C3 into the pooling that follows
 * (`features.1` stands for features.1 and features.2, `features.4` for features.4 and
 * features.5), after C5 and F6 into them (`features.6` for features.6 and features.7,
 * `classifier.1` for classifier.1 and classifier.2).
 *
 * @example
 * ```ts
 * lenet5().layout.trainableCount; // 61706
 * lenet5({ c3: "lecun" }).layout.trainableCount; // 60806
 * ```
 */
export function lenet5(options: ModelOptions = {}): Model {
  const name = options.activation ?? "tanh";
  choice(FUSED_ACTIVATIONS, name, "activation");
  // Every activation a Linear can fuse, a pooling can too.
  const activation = name as FusedActivation & PoolActivation;
  const pool = choice(POOLS, options.pool ?? "avg", "pool");
  const fusedPool = () => pool(activation);
  const c3 = choice(C3S, options.c3 ?? "full", "c3");
  return sequential("lenet5", [
    ["features.0", conv2d({ inChannels: 1, outChannels: 6, kernelSize: 5, padding: 2 })],
    ["features.1", fusedPool()],
    ["features.3", c3()],
    ["features.4", fusedPool()],
    ["features.6", conv2dAsLinear({ inChannels: 16, outChannels: 120, kernelSize: 5, activation })],
    ["classifier.0", flatten()],
    ["classifier.1", linear(120, 84, { activation })],
    ["classifier.3", linear(84, 10)],
  ], { input: [1, IMAGE_SIDE, IMAGE_SIDE], pad: 0 });
}

/** The models train, evaluate and embed know, by `--model` name, built from the run's options. */
export const MODELS: Record<string, (options?: ModelOptions) => Model> = { lenet, lenet5 };

/** One row of the model summary (torchinfo's columns). */
export interface SummaryRow {
  name: string;
  type: string;
  outputShape: number[];
  params: number;
}

/** The layer types that keep their input's shape (a fused one shows the shape it receives). */
const ELEMENTWISE = new Set(["ReLU", "Tanh", "Sigmoid"]);

/** The rows of a torchinfo-like summary for a batch size; a fused layer shows as its parts. */
export function summaryRows(model: Model, batch: number): SummaryRow[] {
  const rows: SummaryRow[] = [];
  let shape = [batch, ...model.input];
  for (const { name, layer } of model.layers) {
    const input = shape;
    shape = layer.outputShape(shape);
    const params = layer.params.filter((p) => p.trainable).reduce((a, p) => a + numel(p.shape), 0);
    const [type, ...fused] = layer.type.split("+");
    // An activation's row shows what it receives (Tanh+AvgPool2d: the unpooled shape); the
    // other part makes the layer's output.
    let partShape = ELEMENTWISE.has(type) ? input : shape;
    rows.push({ name, type, outputShape: partShape, params });
    // A fused part is the next module in PyTorch's numbering (features.1 -> features.2).
    const [prefix, index] = [name.replace(/\.\d+$/, ""), Number(name.split(".").pop())];
    fused.forEach((t, i) => {
      partShape = ELEMENTWISE.has(t) ? partShape : shape;
      rows.push({ name: `${prefix}.${index + i + 1}`, type: t, outputShape: partShape, params: 0 });
    });
  }
  return rows;
}

/** Every op of one batch size, and the tensors the loop binds around them. */
export interface Graph {
  batch: number;
  /** The input the gather writes [B, C, H, W]. */
  x: Tensor;
  /** The last layer's output [B, classes]. */
  logits: Tensor;
  /** The gradient of the loss w.r.t. the logits (written by the loss). */
  dlogits: Tensor;
  /** Each layer's output by module name (embed reads `classifier.0`, the pooled features). */
  outputs: Map<string, Tensor>;
  /** Forward in training mode, in order. */
  train: Op[];
  /** Forward in eval mode, in order. */
  eval: Op[];
  /** Backward, last layer first. */
  backward: Op[];
}

/**
 * Allocates the activations and gradients of `model` for `batch` examples and makes every
 * op once, over the flat `params` and `grads` buffers (laid out as `model.layout`), with the
 * runtime's kernel tier (`rt.tier`).
 */
export async function buildGraph(
  rt: Runtime,
  model: Model,
  options: { batch: number; params: Tensor; grads: Tensor },
): Promise<Graph> {
  const { batch, params, grads } = options;
  const views = (flat: Tensor, layerName: string, trainableOnly: boolean) => {
    const out: Record<string, Tensor> = {};
    for (const e of model.layout.entries) {
      if (!e.name.startsWith(`${layerName}.`) || (trainableOnly && !e.trainable)) continue;
      out[e.name.slice(layerName.length + 1)] = view(flat, e.offset, e.shape, e.name);
    }
    return out;
  };
  const x = tensor(rt, [batch, ...model.input], { label: "x" });
  let input = x;
  let dInput: Tensor | null = null;
  const outputs = new Map<string, Tensor>();
  const built: LayerOps[] = [];
  for (const [i, { name, layer }] of model.layers.entries()) {
    const shape = layer.outputShape(input.shape);
    const y = layer.alias
      ? view(input, input.offset, shape, name)
      : tensor(rt, shape, { label: name });
    // An alias layer's gradient is the layer below's gradient, seen with the output's shape.
    const dy: Tensor = layer.alias
      ? view(
        dInput ?? tensor(rt, input.shape, { label: `d${name}` }),
        dInput?.offset ?? 0,
        shape,
        `d${name}`,
      )
      : tensor(rt, shape, { label: `d${name}` });
    const ctx = {
      rt,
      x: input,
      y,
      dy,
      dx: dInput,
      params: views(params, name, false),
      grads: views(grads, name, true),
      before: model.layers[i - 1]?.layer,
      after: model.layers[i + 1]?.layer,
    };
    built.push(
      layer.alias
        ? { train: [], eval: [], backward: [], saved: {} }
        : await checked(rt, `${name} (${layer.type})`, () => buildLayer(rt.tier, layer, ctx)),
    );
    outputs.set(name, y);
    input = y;
    dInput = dy;
  }
  return {
    batch,
    x,
    logits: input,
    dlogits: dInput!,
    outputs,
    train: built.flatMap((b) => b.train),
    eval: built.flatMap((b) => b.eval),
    backward: built.toReversed().flatMap((b) => b.backward),
  };
}
