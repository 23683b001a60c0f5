import { assertClose } from "./util/assert_close.ts";
import { gpuTest, testRuntime, TIERS } from "./util/gpu.ts";
import { lenet, lenet5 } from "../lib/models.ts";
import { createTrainer } from "../lib/train.ts";
import { random } from "../lib/random.ts";
import { IMAGE_PIXELS } from "../lib/data_gpu.ts";
import { pickTier } from "../lib/device.ts";

/** Digit-like images whose class lights a band of rows, so that the loss falls. */
function split(count: number, seed: number) {
  const rng = random(seed);
  const labels = Uint8Array.from({ length: count }, () => rng.int(10));
  const images = new Uint8Array(count * IMAGE_PIXELS);
  for (let i = 0; i < images.length; i++) {
    const band = Math.floor((i % IMAGE_PIXELS) / 28 / 2.8) === labels[Math.floor(i / IMAGE_PIXELS)];
    images[i] = band && rng.next() < 0.7 ? 200 + rng.int(56) : 0;
  }
  return { images, labels, count };
}

Deno.test(
  "the plain tier and the CPU wing train alike: 20 steps from the same start and order",
  gpuTest,
  async () => {
    const device = await testRuntime();
    const data = { train: split(640, 1), test: split(64, 2) };
    const config = { batchSize: 32, lr: 1e-3, weightDecay: 1e-4, seed: 3, mean: 0.13, std: 0.31 };
    const losses: Float32Array[] = [];
    for (const tier of TIERS) {
      const rt = { ...device, tier };
      const trainer = await createTrainer(rt, lenet(), data, config);
      // The mean loss of each of the 20 steps.
      losses.push((await trainer.trainEpoch(1)).batches.loss);
    }
    // Both are f32 computations of the same step in other orders; on MNIST the two agree to
    // 2e-7 over 20 steps (measured), and a drift of 1e-5 would be a change in what they compute.
    assertClose(losses[1], losses[0], { atol: 0, rtol: 1e-5 }, "per-step losses, cpu vs plain");
    if (!(losses[0][19] < losses[0][0])) throw new Error(`the loss did not fall: ${losses[0]}`);
  },
);

// LeNet-5's wing: C1 -> S2 -> C3 handed over packed, C5 and F6 in the wing's Linear, and with
// LeCun's table the dense conv on a scattered weight.
for (const c3 of ["full", "lecun"]) {
  Deno.test(
    `LeNet-5 (--c3 ${c3}) trains alike with the plain tier and the CPU wing: 20 steps`,
    gpuTest,
    async () => {
      const device = await testRuntime();
      const data = { train: split(640, 1), test: split(64, 2) };
      const config = { batchSize: 32, lr: 1e-3, weightDecay: 1e-4, seed: 3, mean: 0.13, std: 0.31 };
      const losses: Float32Array[] = [];
      for (const tier of TIERS) {
        const trainer = await createTrainer({ ...device, tier }, lenet5({ c3 }), data, config);
        losses.push((await trainer.trainEpoch(1)).batches.loss);
      }
      // Other orders of the same f32 sums (the dense C3 adds exact zeros), as above.
      assertClose(losses[1], losses[0], { atol: 0, rtol: 1e-5 }, "per-step losses, cpu vs plain");
      if (!(losses[0][19] < losses[0][0])) throw new Error(`the loss did not fall: ${losses[0]}`);
    },
  );
}

Deno.test("auto picks the CPU wing on llvmpipe, lavapipe and SwiftShader only", () => {
  const picks = (d: string) => pickTier("auto", d).name;
  const want: [string, string][] = [
    ["llvmpipe (LLVM 15.0.6, 256 bits)", "cpu"],
    ["lavapipe", "cpu"],
    ["SwiftShader Device (Subzero)", "cpu"],
    [" swiftshader", "cpu"], // Chrome: empty description, architecture "swiftshader"
    ["NVIDIA H100 80GB HBM3", "plain"],
    ["", "plain"],
  ];
  for (const [description, tier] of want) {
    if (picks(description) !== tier) throw new Error(`${description}: ${picks(description)}`);
  }
  if (pickTier("plain", "llvmpipe").name !== "plain" || pickTier("cpu", "NVIDIA").name !== "cpu") {
    throw new Error("an explicit choice must win over the adapter");
  }
});
