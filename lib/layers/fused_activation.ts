/**
 * The activations a layer can run fused after it (Linear, conv2dAsLinear; the wing's Linear
 * too): their PyTorch class names and the code its kernel's ACTIVATION override takes.
 * The pooling layers fuse the same three before them (lib/layers/pool2d.ts).
 * @module
 */

/** The activations that can be fused, by name, with PyTorch's class names. */
export const FUSED_ACTIVATIONS = { tanh: "Tanh", sigmoid: "Sigmoid", relu: "ReLU" } as const;

/** An activation that can be fused into a layer. */
export type FusedActivation = keyof typeof FUSED_ACTIVATIONS;

/** The kernels' ACTIVATION override for each (0: none). */
const ACTIVATION_CODES: Record<FusedActivation, number> = { tanh: 1, sigmoid: 2, relu: 3 };

/**
 * The ACTIVATION override for `activation` (0 without one); an error naming `layer` for a
 * name that is not one of {@linkcode FUSED_ACTIVATIONS}.
 *
 * @example
 * ```ts
 * activationCode("Linear", "tanh"); // 1
 * activationCode("Linear", undefined); // 0
 * ```
 */
export function activationCode(layer: string, activation: string | undefined): number {
  if (activation === undefined) return 0;
  if (!Object.hasOwn(FUSED_ACTIVATIONS, activation)) {
    throw new Error(
      `${layer}: activation "${activation}" is not one of ${
        Object.keys(FUSED_ACTIVATIONS).join(", ")
      }`,
    );
  }
  return ACTIVATION_CODES[activation as FusedActivation];
}

/** `type` with the activation after it ("Linear" + tanh: "Linear+Tanh"), as a fused layer's type. */
export function typeWith(type: string, activation: FusedActivation | undefined): string {
  return activation ? `${type}+${FUSED_ACTIVATIONS[activation]}` : type;
}
