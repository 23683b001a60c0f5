import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, testRuntime } from "./util/gpu.ts";
import { readback, type Runtime, submit } from "../lib/runtime.ts";
import type { TierName } from "../lib/tier.ts";
import { tsneWorkgroup } from "../lib/tsne/kernel.ts";
import { tsne, tsneProgram } from "../lib/tsne/tsne.ts";
import { jointProbabilities, tsneAffinities } from "../lib/tsne/affinities.ts";
import { pcaInit } from "../lib/tsne/pca.ts";
import { klDivergence, neighbourAgreement } from "../lib/tsne/quality.ts";
import {
  conditionalProbabilities,
  jointDense,
  principalAxes,
  tsneDescent,
  tsneGradient,
} from "./reference/tsne.ts";

// The GPU tests run with each tier's workgroup (lib/tsne/kernel.ts), on the same device.
const TIERS = ["cpu", "plain"] as const;

// The shared runtime as the given tier: the t-SNE reads only `rt.tier.name`.
async function tierRuntime(name: TierName): Promise<Runtime> {
  const rt = await testRuntime();
  return { ...rt, tier: { ...rt.tier, name } };
}

Deno.test(
  "tsne picks a workgroup of 8 on the cpu tier and of 64 on the plain tier",
  gpuTest,
  async () => {
    const picked = [await tierRuntime("cpu"), await tierRuntime("plain")].map(tsneWorkgroup);
    if (picked[0] !== 8 || picked[1] !== 64) throw new Error(`workgroups ${picked}`);
  },
);

// Points around `clusters` centres (spread `spread` around unit normals): realistic t-SNE input.
function clustered(
  seed: number,
  options: { n: number; dim: number; clusters: number; spread: number },
) {
  const { n, dim, clusters, spread } = options;
  const rng = random(seed);
  const centres = Array.from({ length: clusters }, () => Array.from({ length: dim }, rng.normal));
  const labels = new Uint8Array(n);
  const data = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    labels[i] = i % clusters;
    for (let c = 0; c < dim; c++) data[i * dim + c] = centres[labels[i]][c] + spread * rng.normal();
  }
  return { data, labels };
}

// Each GPU row as a map neighbour -> p, against the reference's rows.
async function checkAffinities(tier: TierName, n: number, dim: number, perplexity: number) {
  const rt = await tierRuntime(tier);
  const { data } = clustered(7, { n, dim, clusters: 4, spread: 0.7 });
  const gpu = await tsneAffinities(rt, data, { n, dim, perplexity });
  const ref = conditionalProbabilities(data, { n, dim, perplexity });
  if (gpu.k !== ref.k) throw new Error(`k ${gpu.k}, expected ${ref.k}`);
  const k = gpu.k;
  const actual = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    const mine = new Map<number, number>();
    let sum = 0, entropy = 0;
    for (let s = 0; s < k; s++) {
      const p = gpu.conditional[i * k + s];
      mine.set(gpu.neighbours[i * k + s], p);
      sum += p;
      if (p > 0) entropy -= p * Math.log(p);
    }
    for (let s = 0; s < k; s++) {
      const j = ref.neighbours[i * k + s];
      if (!mine.has(j)) throw new Error(`row ${i}: neighbour ${j} is missing on the GPU`);
      actual[i * k + s] = mine.get(j)!;
    }
    // Sum of k f32 values, each within a few ulp.
    if (Math.abs(sum - 1) > 1e-5) throw new Error(`row ${i} sums to ${sum}`);
    // The search stops within 1e-5 of log(perplexity) (in f32: a few 1e-7 more).
    if (Math.abs(entropy - Math.log(perplexity)) > 2e-5) {
      throw new Error(`row ${i}: entropy ${entropy}, expected ${Math.log(perplexity)}`);
    }
  }
  // Both stop within 1e-5 of the target entropy but at slightly different precisions
  // (f32 vs f64 sums decide the last bisection steps): dp/p ~ dbeta * |d - mean d| <= 1e-3.
  assertClose(actual, ref.conditional, { atol: 1e-7, rtol: 1e-3 }, "p_{j|i}");
}

for (const tier of TIERS) {
  Deno.test(
    `tsne affinities match the float64 reference over several workgroups (150 points, 7-D) (${tier} tier)`,
    gpuTest,
    () => checkAffinities(tier, 150, 7, 10),
  );
}

for (const tier of TIERS) {
  Deno.test(
    `tsne affinities of data wider than the kernel's register cache (37 points, 70-D) (${tier} tier)`,
    gpuTest,
    () => checkAffinities(tier, 37, 70, 5),
  );
}

for (const tier of TIERS) {
  Deno.test(
    `tsne nearest keeps the exact k nearest past llvmpipe's loop budget (3,000 points, 4 slices) (${tier} tier)`,
    gpuTest,
    async () => {
      const rt = await tierRuntime(tier);
      const n = 3000, dim = 3, perplexity = 30;
      const { data } = clustered(5, { n, dim, clusters: 6, spread: 0.8 });
      const { k, neighbours } = await tsneAffinities(rt, data, { n, dim, perplexity });
      for (const i of [0, 1, 7, 8, 1499, 2991, 2999]) {
        const d = Array.from({ length: n }, (_, j) => {
          let s = 0;
          for (let c = 0; c < dim; c++) s += (data[i * dim + c] - data[j * dim + c]) ** 2;
          return s;
        });
        const expected = Array.from(d.keys()).filter((j) => j !== i).sort((a, b) => d[a] - d[b])
          .slice(0, k);
        const mine = new Set(neighbours.subarray(i * k, (i + 1) * k));
        const missing = expected.filter((j) => !mine.has(j));
        if (missing.length > 0) {
          throw new Error(`row ${i}: misses neighbours ${missing.slice(0, 5)}`);
        }
      }
    },
  );
}

for (const tier of TIERS) {
  Deno.test(
    `tsne repulse sums every point j across its slices (20,001 points: 3 slices) (${tier} tier)`,
    gpuTest,
    async () => {
      const rt = await tierRuntime(tier);
      const n = 20001;
      const rng = random(3);
      const y = Float32Array.from({ length: 2 * n }, () => 10 * rng.normal());
      // P: a ring, each point's one neighbour the next (only the repulsion is checked here).
      const joint = {
        n,
        rowStart: Uint32Array.from({ length: n + 1 }, (_, i) => i),
        columns: Uint32Array.from({ length: n }, (_, i) => (i + 1) % n),
        values: new Float32Array(n).fill(1 / n),
        entropyTerm: Math.log(1 / n),
        total: 1,
      };
      const program = await tsneProgram(rt, joint, y);
      submit(rt, program.evaluate());
      const repulsion = await readback(rt, program.repulsion);
      program.destroy();
      const slices = repulsion.length / (4 * n);
      if (slices !== 3) throw new Error(`${slices} slices`);
      const rows = [0, 1, 4095, 8191, 8192, 16384, n - 1];
      const actual: number[] = [], expected: number[] = [];
      for (const i of rows) {
        const sums = [0, 0, 0];
        for (let j = 0; j < n; j++) {
          if (j === i) continue;
          const dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
          const w = 1 / (1 + dx * dx + dy * dy);
          sums[0] += w * w * dx;
          sums[1] += w * w * dy;
          sums[2] += w;
        }
        expected.push(...sums);
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let slice = 0; slice < slices; slice++) s += repulsion[4 * (slice * n + i) + c];
          actual.push(s);
        }
      }
      // f32 sums of 20,000 terms (the repulsion's terms of both signs, ~1e-4 of the largest).
      assertClose(actual, expected, { atol: 1e-4, rtol: 1e-4 }, "repulse and z over all slices");
    },
  );
}

Deno.test("tsne joint P merges the pairs both points keep, as the dense reference", () => {
  const n = 60, dim = 5, perplexity = 4;
  const { data } = clustered(3, { n, dim, clusters: 3, spread: 0.5 });
  const ref = conditionalProbabilities(data, { n, dim, perplexity });
  const joint = jointProbabilities({
    k: ref.k,
    neighbours: Uint32Array.from(ref.neighbours),
    conditional: Float32Array.from(ref.conditional),
  }, { n });
  const dense = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let e = joint.rowStart[i]; e < joint.rowStart[i + 1]; e++) {
      if (e > joint.rowStart[i] && joint.columns[e] <= joint.columns[e - 1]) {
        throw new Error(`row ${i}: columns not strictly ascending`);
      }
      dense[i * n + joint.columns[e]] = joint.values[e];
    }
  }
  // f32 values of float64 sums.
  assertClose(dense, jointDense(ref, { n }), { atol: 1e-9, rtol: 1e-6 }, "P");
  let plogp = 0;
  for (const p of joint.values) plogp += p * Math.log(p);
  assertClose([joint.entropyTerm], [plogp], { atol: 1e-12, rtol: 1e-12 }, "sum p log p");
  // n k values rounded to f32 (2^-24 relative each).
  assertClose([joint.total], [1], { atol: 1e-7, rtol: 0 }, "sum p");
});

for (const tier of TIERS) {
  Deno.test(
    `tsne gradient and one update step match the reference (37 points: odd, 2 invocations) (${tier} tier)`,
    gpuTest,
    async () => {
      const rt = await tierRuntime(tier);
      const n = 37, dim = 6, perplexity = 5;
      const { data } = clustered(11, { n, dim, clusters: 3, spread: 0.5 });
      const joint = jointProbabilities(await tsneAffinities(rt, data, { n, dim, perplexity }), {
        n,
      });
      const p = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let e = joint.rowStart[i]; e < joint.rowStart[i + 1]; e++) {
          p[i * n + joint.columns[e]] = joint.values[e];
        }
      }
      const rng = random(5);
      const y = Float32Array.from({ length: 2 * n }, () => 2 * rng.normal());
      const program = await tsneProgram(rt, joint, y);
      const exaggeration = 12, learningRate = 200;
      submit(
        rt,
        program.iteration({ exaggeration, momentum: 0.5, learningRate, reset: true, withKl: true }),
      );
      const attraction = await readback(rt, program.attraction);
      const repulsion = await readback(rt, program.repulsion);
      const moved = (await readback(rt, program.positions)).slice(0, 2 * n);
      const kl = await program.kl();
      program.destroy();

      const ref = tsneGradient(y, p, { n, exaggeration });
      const pick = (from: Float32Array, stride: number, first: number) =>
        Array.from({ length: 2 * n }, (_, c) => from[Math.floor(c / 2) * stride + first + (c % 2)]);
      const z = Array.from({ length: n }, (_, i) => repulsion[4 * i + 2]).reduce(
        (a, b) => a + b,
        0,
      );
      // f32 sums of 37 terms of size <= 1 (z) or of p w d (attraction): a few ulp each.
      assertClose(pick(attraction, 4, 0), ref.attract, { atol: 1e-7, rtol: 1e-5 }, "attract");
      assertClose(pick(repulsion, 4, 0), ref.repulse, { atol: 1e-6, rtol: 1e-5 }, "repulse");
      assertClose([z], [ref.z], { atol: 0, rtol: 1e-5 }, "Z");
      // KL = sum p log p - sum p log w + log Z: terms of size ~5 cancel to ~1 in f32.
      assertClose([kl], [ref.kl], { atol: 1e-5, rtol: 1e-5 }, "KL");
      // First step of a phase: the gains fall to 0.8 (step 0 is not of the other sign), so
      // y' = y - 0.8 * learning_rate * gradient.
      const expected = Array.from(y, (v, c) => v - 0.8 * learningRate * ref.gradient[c]);
      assertClose(moved, expected, { atol: 1e-5, rtol: 1e-5 }, "y after one step");
    },
  );
}

for (const tier of TIERS) {
  Deno.test(
    `tsne: 8 iterations across the phase change match the float64 descent (${tier} tier)`,
    gpuTest,
    async () => {
      const rt = await tierRuntime(tier);
      const n = 53, dim = 4, perplexity = 6, iterations = 8, exaggerationIterations = 4;
      const { data } = clustered(2, { n, dim, clusters: 3, spread: 0.6 });
      const result = await tsne(rt, data, {
        n,
        dim,
        perplexity,
        iterations,
        exaggerationIterations,
        seed: 1,
      });
      // The reference descends on the GPU's P (checked above), to test the descent alone.
      const joint = jointProbabilities(await tsneAffinities(rt, data, { n, dim, perplexity }), {
        n,
      });
      const p = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let e = joint.rowStart[i]; e < joint.rowStart[i + 1]; e++) {
          p[i * n + joint.columns[e]] = joint.values[e];
        }
      }
      const y = tsneDescent(pcaInit(data, { n, dim, seed: 1 }), p, {
        n,
        iterations,
        exaggerationIterations,
      });
      // These steps blow the embedding up from 1e-4 to ~100 and amplify rounding: in float64,
      // P changed by its f32 rounding (1e-7) moves the result by 7.5e-4 of its spread here. So
      // 1e-3 of the spread; a wrong schedule, learning rate or exaggeration moves it by ~1x.
      const spread = Math.max(...y.map(Math.abs));
      assertClose(result.points, y, { atol: 1e-3 * spread, rtol: 0 }, "y after 8 iterations");
      assertClose([result.kl], [tsneGradient(y, p, { n }).kl], { atol: 0, rtol: 1e-3 }, "KL");
    },
  );
}

Deno.test("pcaInit projects on the 2 leading principal axes, first column std 1e-4", () => {
  const n = 200, dim = 9;
  const rng = random(4);
  // Axes of very different spread, then rotated by mixing the coordinates.
  const data = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < dim; c++) data[i * dim + c] = rng.normal() * (dim - c);
    for (let c = 1; c < dim; c++) data[i * dim + c] += 0.5 * data[i * dim + c - 1];
  }
  const y = pcaInit(data, { n, dim });
  const axes = principalAxes(data, { n, dim, count: 2 });
  const mean = Array.from({ length: dim }, (_, c) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += data[i * dim + c];
    return s / n;
  });
  const project = (i: number, axis: Float64Array) =>
    axis.reduce((s, a, c) => s + a * (data[i * dim + c] - mean[c]), 0);
  const first = Array.from({ length: n }, (_, i) => project(i, axes[0]));
  const second = Array.from({ length: n }, (_, i) => project(i, axes[1]));
  const std = Math.sqrt(first.reduce((s, v) => s + v * v, 0) / n);
  // Components up to sign, scaled by 1e-4 / std(first); f32 output.
  const sign = (m: number, ref: number[]) => Math.sign(y[m] * ref[0]) || 1;
  const s0 = sign(0, first), s1 = sign(1, second);
  const expected = first.flatMap((v, i) => [s0 * v / std * 1e-4, s1 * second[i] / std * 1e-4]);
  assertClose(y, expected, { atol: 1e-10, rtol: 1e-5 }, "PCA init");
});

for (const tier of TIERS) {
  Deno.test(
    `tsne separates 10 clusters (300 points): 10-NN label agreement > 95% (${tier} tier)`,
    gpuTest,
    async () => {
      const rt = await tierRuntime(tier);
      const n = 300, dim = 10;
      const { data, labels } = clustered(9, { n, dim, clusters: 10, spread: 0.25 });
      const result = await tsne(rt, data, { n, dim });
      const agreement = neighbourAgreement(result.points, labels, { k: 10 });
      if (!(agreement > 0.95)) throw new Error(`10-NN label agreement ${agreement}`);
      if (!Number.isFinite(result.kl) || result.kl <= 0) throw new Error(`KL ${result.kl}`);
      // The KL the GPU reports is the one of the points it returns.
      const joint = jointProbabilities(
        await tsneAffinities(rt, data, { n, dim, perplexity: 30 }),
        { n },
      );
      assertClose(
        [result.kl],
        [klDivergence(result.points, joint)],
        { atol: 1e-4, rtol: 1e-4 },
        "KL",
      );
    },
  );
}

Deno.test("tsne rejects bad input with a clear error", gpuTest, async () => {
  const rt = await testRuntime();
  const expectError = async (what: string, run: () => Promise<unknown>) => {
    let message = "";
    try {
      await run();
    } catch (e) {
      message = String(e);
    }
    if (!message.includes(what)) {
      throw new Error(`expected an error with "${what}", got "${message}"`);
    }
  };
  const data = new Float32Array(20).map((_, i) => i);
  await expectError("at least 2 points", () => tsne(rt, data.subarray(0, 2), { n: 1, dim: 2 }));
  await expectError("perplexity must be in (0, n)", () => tsne(rt, data, { n: 10, dim: 2 }));
  await expectError(
    "perplexity must be in (0, n)",
    () => tsne(rt, data, { n: 10, dim: 2, perplexity: 10 }),
  );
  await expectError("expected n * dim", () => tsne(rt, data, { n: 9, dim: 2, perplexity: 3 }));
  const bad = data.slice();
  bad[7] = NaN;
  await expectError("must be finite", () => tsne(rt, bad, { n: 10, dim: 2, perplexity: 3 }));
  bad[7] = Infinity;
  await expectError("data[7]", () => tsne(rt, bad, { n: 10, dim: 2, perplexity: 3 }));
});

Deno.test("neighbourAgreement counts the neighbours that share a label", () => {
  // Two tight pairs far apart, labels split across them: each point's nearest is its pair.
  const points = [0, 0, 0, 1, 50, 50, 50, 51];
  if (neighbourAgreement(points, [0, 0, 1, 1], { k: 1 }) !== 1) throw new Error("k = 1");
  if (neighbourAgreement(points, [0, 1, 0, 1], { k: 1 }) !== 0) throw new Error("k = 1 swapped");
  // k = 2: the pair (same label) and one of the far pair (other label).
  if (neighbourAgreement(points, [0, 0, 1, 1], { k: 2 }) !== 0.5) throw new Error("k = 2");
});
