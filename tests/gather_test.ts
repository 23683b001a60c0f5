import { assertClose } from "./util/assert_close.ts";
import { gpuTest, random, testRuntime } from "./util/gpu.ts";
import { type CpuDataset, gatherReference } from "./reference/gather.ts";
import { gatherOp, uploadDataset } from "../lib/data_gpu.ts";
import { createStepState } from "../lib/step_state.ts";
import { readback, readbackU32, type Runtime, submit, tensor, upload } from "../lib/runtime.ts";

const MEAN = 0.1307, STD = 0.3081;
// |x| < 3: x = pixel * scale + shift in f32 is off by a few roundings of values below 3.
const X_TOLERANCE = { atol: 1e-6, rtol: 0 };

function randomDataset(seed: number, count: number, height: number, width: number): CpuDataset {
  const rng = random(seed);
  const images = new Uint8Array(count * height * width).map(() => rng.int(256));
  // The extremes must survive the byte unpacking.
  images[0] = 255;
  images[images.length - 1] = 255;
  const labels = new Uint8Array(count).map(() => rng.int(10));
  return { images, labels, height, width };
}

function permutation(seed: number, n: number): Uint32Array<ArrayBuffer> {
  const rng = random(seed);
  const order = new Uint32Array(n).map((_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

async function checkGather(
  rt: Runtime,
  data: CpuDataset,
  options: { batch: number; batchSize: number; count: number; pad: number; label: string },
): Promise<void> {
  const { batch, batchSize, count, pad, label } = options;
  const n = data.labels.length;
  const dataset = uploadDataset(rt, data.images, data.labels, {
    label,
    height: data.height,
    width: data.width,
  });
  const order = tensor(rt, [n], { dtype: "u32", label: "order" });
  const orderData = permutation(7, n);
  upload(rt, order, orderData);
  const state = await createStepState(rt);
  state.set(rt, { step: 5, batch });
  const x = tensor(rt, [count, 1, data.height + 2 * pad, data.width + 2 * pad], { label: "x" });
  const labels = tensor(rt, [count], { dtype: "u32", label: "labels" });
  const gather = await gatherOp(rt, {
    dataset,
    order,
    state: state.tensor,
    x,
    labels,
    batchSize,
    count,
    mean: MEAN,
    std: STD,
    pad,
  });
  submit(rt, [gather]);
  const expected = gatherReference(data, {
    order: orderData,
    batch,
    batchSize,
    count,
    mean: MEAN,
    std: STD,
    pad,
  });
  assertClose(await readback(rt, x), expected.x, X_TOLERANCE, `${label} x`);
  assertClose(
    await readbackU32(rt, labels),
    expected.labels,
    { atol: 0, rtol: 0 },
    `${label} labels`,
  );
}

Deno.test(
  "gather picks the shuffled batch 0 of 28x28 images without padding",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const data = randomDataset(1, 103, 28, 28);
    await checkGather(rt, data, { batch: 0, batchSize: 32, count: 32, pad: 0, label: "pad 0" });
  },
);

Deno.test(
  "gather writes a zero border (after normalization) at batch index 2",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const data = randomDataset(2, 103, 28, 28);
    await checkGather(rt, data, { batch: 2, batchSize: 32, count: 32, pad: 2, label: "pad 2" });
  },
);

Deno.test("gather of the last partial batch offsets by the full batch size", gpuTest, async () => {
  const rt = await testRuntime();
  // 103 = 3 * 32 + 7: batch 3 holds the 7 last images of the order.
  const data = randomDataset(3, 103, 28, 28);
  await checkGather(rt, data, { batch: 3, batchSize: 32, count: 7, pad: 2, label: "partial" });
});

Deno.test("gather unpacks images whose size is not a multiple of 4 bytes", gpuTest, async () => {
  const rt = await testRuntime();
  // 5x7 = 35 bytes an image: rows and images start in the middle of a word.
  const data = randomDataset(4, 9, 5, 7);
  await checkGather(rt, data, { batch: 1, batchSize: 3, count: 3, pad: 1, label: "5x7" });
  // Without a border: the last float of x (105 of them: not whole vec4s) is a pixel, not a 0.
  await checkGather(rt, data, { batch: 2, batchSize: 3, count: 3, pad: 0, label: "5x7 pad 0" });
});

Deno.test("gather of 1000 images spans many workgroups", gpuTest, async () => {
  const rt = await testRuntime();
  const data = randomDataset(5, 1001, 28, 28);
  await checkGather(rt, data, { batch: 0, batchSize: 1000, count: 1000, pad: 2, label: "1000" });
});

Deno.test("gather reads the next batch after the step state advances", gpuTest, async () => {
  const rt = await testRuntime();
  const data = randomDataset(6, 10, 4, 4);
  const dataset = uploadDataset(rt, data.images, data.labels, { height: 4, width: 4 });
  const order = tensor(rt, [10], { dtype: "u32" });
  const orderData = permutation(8, 10);
  upload(rt, order, orderData);
  const state = await createStepState(rt);
  const x = tensor(rt, [4, 1, 4, 4]);
  const labels = tensor(rt, [4], { dtype: "u32" });
  const options = { dataset, order, state: state.tensor, x, labels, batchSize: 4 };
  const gather = await gatherOp(rt, { ...options, mean: MEAN, std: STD });
  // Two steps in one submit: the second gather sees batch 1.
  submit(rt, [gather, state.advanceTrain, gather, state.advanceEval]);
  const expected = gatherReference(data, {
    order: orderData,
    batch: 1,
    batchSize: 4,
    count: 4,
    mean: MEAN,
    std: STD,
    pad: 0,
  });
  assertClose(await readback(rt, x), expected.x, X_TOLERANCE, "x of batch 1");
  assertClose(await readbackU32(rt, labels), expected.labels, { atol: 0, rtol: 0 }, "labels");
  const counters = await state.read(rt);
  if (counters.step !== 1 || counters.batch !== 2) {
    throw new Error(`step state ${JSON.stringify(counters)}, expected step 1, batch 2`);
  }
});
