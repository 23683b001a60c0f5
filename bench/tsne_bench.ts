/**
 * Throughput of kernels/tsne.wgsl at the seed's shape (the logits of 1,000 images: 10-D,
 * perplexity 30, so k = 91 neighbours) and one optimizer iteration at 1,000, 5,000 and
 * 10,000 points. Data: 10 Gaussian clusters (seeded). For whole runs against scikit-learn
 * and tsne-js, see bench/tsne_compare.ts.
 *
 * Counted flops: `nearest` 3 per pair and dimension (subtract, multiply-add); `gradient` 11
 * per pair (all pairs: the repulsion) and 12 per kept pair of P (the padded CSR entries: the
 * attraction).
 * @module
 */

import { gpuBench } from "./util.ts";
import type { Runtime } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";
import { random } from "../lib/random.ts";
import { affinityProgram, jointProbabilities, tsneAffinities } from "../lib/tsne/affinities.ts";
import { pcaInit } from "../lib/tsne/pca.ts";
import { tsneProgram } from "../lib/tsne/tsne.ts";

const rt = createRuntime("auto");
const DIM = 10;
const PERPLEXITY = 30;

function clusters(n: number): Float32Array {
  const rng = random(1);
  const centres = Array.from(
    { length: 10 },
    () => Array.from({ length: DIM }, () => 3 * rng.normal()),
  );
  const data = new Float32Array(n * DIM);
  for (let i = 0; i < n; i++) {
    const label = rng.int(10);
    for (let c = 0; c < DIM; c++) data[i * DIM + c] = centres[label][c] + rng.normal();
  }
  return data;
}

gpuBench("tsne nearest: 1,000 x 10-D, k 91", rt, async (rt) => {
  const n = 1000;
  const program = await affinityProgram(rt, clusters(n), { n, dim: DIM, perplexity: PERPLEXITY });
  return { ops: program.nearest, work: { flops: 3 * n * n * DIM } };
}, { repeat: 10 });

gpuBench("tsne nearest + calibrate: 1,000 x 10-D, k 91", rt, async (rt) => {
  const n = 1000;
  const program = await affinityProgram(rt, clusters(n), { n, dim: DIM, perplexity: PERPLEXITY });
  return { ops: [...program.nearest, program.calibrate], work: { flops: 3 * n * n * DIM } };
}, { repeat: 10 });

// The two dispatches of one iteration (after the early exaggeration), on P of the data.
async function iteration(rt: Runtime, n: number) {
  const data = clusters(n);
  const joint = jointProbabilities(
    await tsneAffinities(rt, data, { n, dim: DIM, perplexity: PERPLEXITY }),
    { n },
  );
  const program = await tsneProgram(rt, joint, pcaInit(data, { n, dim: DIM }));
  const ops = program.iteration({
    exaggeration: 1,
    momentum: 0.8,
    learningRate: 200,
    reset: false,
    withKl: false,
  });
  // Rows padded to multiples of 4 entries, as the kernel reads them.
  let entries = 0;
  for (let i = 0; i < n; i++) {
    entries += Math.ceil((joint.rowStart[i + 1] - joint.rowStart[i]) / 4) * 4;
  }
  return { ops, flops: 11 * n * n + 12 * entries };
}

gpuBench("tsne gradient: 1,000 points", rt, async (rt) => {
  const { ops, flops } = await iteration(rt, 1000);
  return { ops: [ops[0]], work: { flops } };
});

gpuBench("tsne update: 1,000 points", rt, async (rt) => {
  const { ops } = await iteration(rt, 1000);
  // attraction, repulsion and positions read, state read and written, positions written.
  return { ops: [ops[1]], work: { bytes: 1000 * (16 + 16 + 8 + 32 + 8) } };
});

for (const n of [1000, 5000, 10000]) {
  gpuBench(
    `tsne iteration (gradient + update): ${n.toLocaleString("en")} points`,
    rt,
    async (rt) => {
      const { ops, flops } = await iteration(rt, n);
      return { ops, work: { flops } };
    },
    { repeat: n > 2000 ? 2 : 20 },
  );
}
