/**
 * createRuntime: the device (lib/runtime.ts requestRuntime) and the kernel tier, chosen once.
 * This module sits above the core: it is the one place that knows both the plain tier and the
 * CPU wing, so that no core module imports the wing.
 * @module
 */

import { type DeviceChoice, requestRuntime, type Runtime } from "./runtime.ts";
import { PLAIN_TIER, type Tier } from "./tier.ts";
import { CPU_TIER } from "./cpu/tier.ts";

/** Which kernels to build layers with: `auto` picks from the adapter. */
export type KernelChoice = "auto" | "plain" | "cpu";

/**
 * The tier for `choice` on an adapter described by `adapter`: its name and driver, and its
 * architecture (a browser's only clue: Chrome's SwiftShader reports an empty description and
 * the architecture "swiftshader").
 */
export function pickTier(choice: KernelChoice, adapter: string): Tier {
  if (choice === "plain") return PLAIN_TIER;
  if (choice === "cpu") return CPU_TIER;
  // The wing is tuned for Mesa's llvmpipe and lavapipe (a CPU thread per workgroup, SIMD lanes
  // for invocations). SwiftShader emulates a GPU on the CPU too, and the wing trains the seed
  // model 16x faster there than the plain tier (measured in chromium: 1,041 against 65 images/s).
  return /llvmpipe|lavapipe|swiftshader/i.test(adapter) ? CPU_TIER : PLAIN_TIER;
}

/**
 * Requests the adapter and device for `choice` and picks the kernel tier once: `kernels`
 * "auto" (the default) is the CPU wing on llvmpipe, lavapipe or SwiftShader and the plain tier
 * elsewhere.
 * Throws with a message that says how to get an adapter when there is none.
 *
 * @example
 * ```ts
 * import { createRuntime } from "./device.ts";
 *
 * const rt = await createRuntime("auto", { kernels: "plain" });
 * console.log(rt.description, rt.tier.name); // "... plain"
 * ```
 */
export async function createRuntime(
  choice: DeviceChoice = "auto",
  options: { kernels?: KernelChoice } = {},
): Promise<Runtime> {
  const kernels = options.kernels ?? "auto";
  if (!["auto", "plain", "cpu"].includes(kernels)) {
    throw new Error(`kernels: "${kernels}" is not one of auto, plain, cpu`);
  }
  const rt = await requestRuntime(choice);
  return { ...rt, tier: pickTier(kernels, `${rt.description} ${rt.architecture}`) };
}
