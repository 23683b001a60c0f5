/**
 * The data the step benchmarks train on: data/mnist when `deno task download` has written it,
 * else MNIST-shaped random bytes (a step's speed does not depend on the pixels).
 * @module
 */

import { loadDataset, meanStd, type Normalization } from "../lib/io/mnist.ts";
import { random } from "../lib/random.ts";
import type { Split } from "../lib/train.ts";

/**
 * MNIST from data/, or 2,048 + 512 random images when it is not there, with the training
 * pixels' own mean and std (the data file's, or the random bytes').
 */
export async function benchData(): Promise<
  { train: Split; test: Split; normalization: Normalization }
> {
  try {
    return await loadDataset("data", "mnist");
  } catch {
    const rng = random(1);
    const split = (count: number) => ({
      images: Uint8Array.from({ length: count * 784 }, () => rng.int(256)),
      labels: Uint8Array.from({ length: count }, () => rng.int(10)),
      count,
    });
    const train = split(2048);
    return { train, test: split(512), normalization: meanStd(train.images) };
  }
}
