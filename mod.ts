/**
 * lenet-webgpu: LeNet on MNIST, trained and run entirely by hand-written WGSL kernels on
 * WebGPU. The library: the GPU runtime, the layers (each with its exact backward), the
 * models with PyTorch's parameter names, AdamW, the training loop, and the file formats.
 *
 * @example
 * ```ts
 * import { lenet, summaryRows } from "./mod.ts";
 *
 * const model = lenet();
 * console.log(model.layout.trainableCount); // 8922
 * console.log(summaryRows(model, 32).map((r) => `${r.name} ${r.type} [${r.outputShape}]`));
 * ```
 * @module
 */

export * from "./lib/runtime.ts";
export { createRuntime, type KernelChoice, pickTier } from "./lib/device.ts";
export { buildLayer, PLAIN_TIER, type Tier, type TierName } from "./lib/tier.ts";
export * from "./lib/random.ts";
export * from "./lib/params.ts";
export type * from "./lib/layers/layer.ts";
export { conv2d, type Conv2dOptions } from "./lib/layers/conv2d.ts";
export { batchnorm2d } from "./lib/layers/batchnorm2d.ts";
export { relu } from "./lib/layers/relu.ts";
export { adaptiveAvgPool2d } from "./lib/layers/adaptive_avg_pool2d.ts";
export { flatten } from "./lib/layers/flatten.ts";
export { linear } from "./lib/layers/linear.ts";
export { crossEntropy } from "./lib/layers/cross_entropy.ts";
export { createAdamW } from "./lib/adamw.ts";
export { IMAGE_PIXELS, IMAGE_SIDE } from "./lib/data_gpu.ts";
export * from "./lib/models.ts";
export * from "./lib/train.ts";
export * from "./lib/infer.ts";
export * from "./lib/metrics.ts";
export * from "./lib/checkpoint.ts";
export { decodeSafetensors, encodeSafetensors } from "./lib/io/safetensors.ts";
export { parseIdxImages, parseIdxLabels } from "./lib/io/idx.ts";
export { avgPool2d, maxPool2d, type Pool2dOptions } from "./lib/layers/pool2d.ts";
export { sigmoid, tanh } from "./lib/layers/activation.ts";
export { conv2dTable, LECUN_C3_TABLE } from "./lib/layers/conv2d_table.ts";
export { conv2dAsLinear } from "./lib/layers/conv2d_as_linear.ts";
export { tsne, type TsneOptions, type TsneResult } from "./lib/tsne/tsne.ts";
