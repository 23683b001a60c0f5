import { assertClose } from "./util/assert_close.ts";
import { syntheticSplit } from "./util/synthetic.ts";
import { gpuTest, testRuntime, TIERS } from "./util/gpu.ts";
import { lenet } from "../lib/models.ts";
import { createTrainer, epochOrder } from "../lib/train.ts";
import { initParams } from "../lib/params.ts";
import { random } from "../lib/random.ts";
import { readback } from "../lib/runtime.ts";
import { lenetStepReference } from "./reference/lenet_step.ts";
import { IMAGE_SIDE } from "../lib/data_gpu.ts";

for (const tier of TIERS) {
  Deno.test(
    `a whole lenet training step (forward, loss, backward, AdamW) on the ${tier.name} tier matches the float64 reference over two steps`,
    gpuTest,
    async () => {
      // The suite's device with this tier's kernels.
      const rt = { ...await testRuntime(), tier };
      const model = lenet();
      const config = {
        batchSize: 32,
        lr: 1e-3,
        weightDecay: 1e-4,
        seed: 5,
        mean: 0.1307,
        std: 0.3081,
      };
      // 64 images at batch 32: one epoch is exactly two steps.
      const train = syntheticSplit(64, 11);
      const test = syntheticSplit(8, 12);
      const trainer = await createTrainer(rt, model, { train, test }, config);
      const result = await trainer.trainEpoch(1);

      const state = {
        params: Float64Array.from(initParams(model.layout, random(config.seed))),
        m: new Float64Array(model.layout.trainableSize),
        v: new Float64Array(model.layout.trainableSize),
      };
      const order = epochOrder(config.seed, 1, train.count);
      const steps = [0, 1].map((batch) =>
        lenetStepReference(model, state, {
          ...train,
          height: IMAGE_SIDE,
          width: IMAGE_SIDE,
          order,
          batch,
          batchSize: 32,
          count: 32,
        }, {
          ...config,
          t: batch + 1,
        })
      );
      // Loss: f32 sums over a few thousand products; 1e-5 relative is ~100 f32 ulps.
      const meanLoss = (steps[0].loss + steps[1].loss) / 2;
      assertClose([result.loss], [meanLoss], { atol: 0, rtol: 1e-5 }, "mean loss of the two steps");
      assertClose([result.accuracy], [(100 * (steps[0].correct + steps[1].correct)) / 64], {
        atol: 0,
        rtol: 0,
      }, "accuracy");
      const batches = result.batches;
      assertClose(
        batches.loss,
        [steps[0].loss, steps[1].loss],
        { atol: 0, rtol: 1e-5 },
        "batch losses",
      );
      assertClose(
        batches.correct,
        [steps[0].correct, steps[1].correct],
        { atol: 0, rtol: 0 },
        "correct",
      );

      const size = model.layout.trainableSize;
      const grads = (await readback(rt, trainer.grads)).subarray(0, size);
      const largest = steps[1].grads.reduce((a, g) => Math.max(a, Math.abs(g)), 0);
      // Gradients pass through two BatchNorms and reductions of up to 5,408 f32 terms: 1e-4 of
      // the largest gradient absolute, 1e-3 relative.
      assertClose(
        grads,
        steps[1].grads,
        { atol: 1e-4 * largest, rtol: 1e-3 },
        "gradients of step 2",
      );

      // A conv bias followed by BatchNorm has a gradient of exactly 0 (BN subtracts the mean);
      // both sides compute rounding noise (~1e-8), which AdamW turns into steps of up to lr. For
      // those values we check the gradient is noise and the step stays within AdamW's bound.
      const noise = (i: number) =>
        Math.max(Math.abs(steps[0].grads[i]), Math.abs(steps[1].grads[i])) < 1e-6 * largest;
      const params = await readback(rt, trainer.params);
      const m = await readback(rt, trainer.moments.m);
      const v = await readback(rt, trainer.moments.v);
      const initial = initParams(model.layout, random(config.seed));
      // AdamW's first step is lr * g / (|g| + eps) (eps = 1e-8): an error d in g moves it by
      // lr * eps * d / (|g| + eps)^2, which is no longer small when g is within a few hundred
      // eps of 0. With d = 1e-7 of the largest gradient (f32 rounding of sums of up to 5,408
      // terms), that bound is checked apart for the weights whose step 1 it makes sensitive.
      const eps = 1e-8;
      const sensitivity = (i: number) =>
        config.lr * eps * 1e-7 * largest / (Math.abs(steps[0].grads[i]) + eps) ** 2;
      const sensitive = (i: number) => sensitivity(i) > 1e-7;
      for (const e of model.layout.entries) {
        const idx = Array.from({ length: e.size }, (_, i) => e.offset + i).filter((i) =>
          !e.trainable || (!noise(i) && !sensitive(i))
        );
        const pick = (a: ArrayLike<number>) => idx.map((i) => a[i]);
        // The moments are plain blends of the gradients: every weight whose gradient is not noise.
        const moments = Array.from({ length: e.size }, (_, i) => e.offset + i).filter((i) =>
          !noise(i)
        );
        const pickMoment = (a: ArrayLike<number>) => moments.map((i) => a[i]);
        // After two AdamW steps each weight moved by about 2 lr = 2e-3; an error of 1e-3 of that
        // step in m / sqrt(v) is 2e-6. Running statistics: f32 means and variances, 1e-5 relative.
        // A running mean also holds the conv bias of step 1 (noise, see above) times momentum 0.1.
        const tolerance = e.trainable ? { atol: 2e-6, rtol: 0 } : {
          atol: 1e-6 + (e.name.endsWith("running_mean") ? 0.1 * config.lr * 1.001 : 0),
          rtol: 1e-5,
        };
        assertClose(pick(params), pick(state.params), tolerance, e.name);
        if (!e.trainable) continue;
        assertClose(
          pickMoment(m),
          pickMoment(state.m),
          { atol: 1e-5 * largest, rtol: 1e-3 },
          `${e.name} exp_avg`,
        );
        assertClose(
          pickMoment(v),
          pickMoment(state.v),
          { atol: 1e-5 * largest ** 2, rtol: 2e-3 },
          `${e.name} exp_avg_sq`,
        );
        for (let i = e.offset; i < e.offset + e.size; i++) {
          if (idx.includes(i)) continue;
          if (!noise(i)) {
            const bound = 2e-6 + sensitivity(i);
            if (!(Math.abs(params[i] - state.params[i]) <= bound)) {
              throw new Error(
                `${e.name}[${i - e.offset}]: ${params[i]}, expected ${state.params[i]} within ` +
                  `${bound} (its step-1 gradient ${steps[0].grads[i]} is near AdamW's eps)`,
              );
            }
            continue;
          }
          const moved = Math.abs(params[i] - initial[i]);
          if (!(Math.abs(grads[i]) < 1e-6 * largest) || moved > 2 * config.lr * 1.001) {
            throw new Error(
              `${e.name}[${i - e.offset}]: gradient ${grads[i]} should be noise; moved ${moved}`,
            );
          }
        }
      }
    },
  );
}
