import { assertClose, type Tolerance } from "./util/assert_close.ts";
import { gpuTest, random, randomArray, tensorFrom, testRuntime, TIERS } from "./util/gpu.ts";
import { buildLayer, PLAIN_TIER, type Tier } from "../lib/tier.ts";
import type { Random } from "../lib/random.ts";
import {
  conv2dTableBackwardInput,
  conv2dTableBackwardWeight,
  conv2dTableForward,
  conv2dTableOutputShape,
  type Conv2dTableShape,
  denseWeightOfTable,
} from "./reference/conv2d_table.ts";
import {
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dForward,
  type Conv2dShape,
} from "./reference/conv2d.ts";
import { conv2dTable, conv2dTableWords, LECUN_C3_TABLE } from "../lib/layers/conv2d_table.ts";
import { conv2d } from "../lib/layers/conv2d.ts";
import type { LayerOps } from "../lib/layers/layer.ts";
import {
  idle,
  kernel,
  numel,
  op,
  readback,
  type Runtime,
  submit,
  type Tensor,
  uniform,
  upload,
  view,
} from "../lib/runtime.ts";

type Table = readonly (readonly number[])[];

/** randomArray, typed for upload() (randomArray's declared type allows a shared buffer). */
function floats(rng: Random, n: number): Float32Array<ArrayBuffer> {
  return new Float32Array(randomArray(rng, n));
}
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/** A random table: each of `k` output maps reads a random non-empty ascending subset of `c` maps. */
function randomTable(rng: Random, c: number, k: number): number[][] {
  return Array.from({ length: k }, () => {
    const inputs = [...Array(c).keys()].filter(() => rng.next() < 0.5);
    return inputs.length > 0 ? inputs : [rng.int(c)];
  });
}

const connectionsOf = (table: Table) => table.reduce((a, r) => a + r.length, 0);

/** The layer's tensors on the GPU, laid out as a model lays them out. */
interface Bound {
  rt: Runtime;
  x: Tensor;
  y: Tensor;
  dy: Tensor;
  dx: Tensor;
  weight: Tensor;
  bias: Tensor;
  dweight: Tensor;
  dbias: Tensor;
  flatGrad: Tensor;
  ops: LayerOps;
}

const ALIGN = 64;
const aligned = (n: number) => Math.ceil(n / ALIGN) * ALIGN;
const SENTINEL = 12345;

/**
 * Builds the layer for `shape` with `tier`'s kernels (the CPU wing runs the dense conv on a
 * scattered weight): weight and bias are views at offsets 64 and after into one flat buffer
 * (gradients likewise), and every float of the flat gradient buffer outside the views holds
 * a sentinel that must survive.
 */
async function bind(shape: Conv2dTableShape, tier: Tier = PLAIN_TIER): Promise<Bound> {
  const rt = await testRuntime();
  const yShape = conv2dTableOutputShape(shape);
  const k = shape.table.length;
  const wSize = connectionsOf(shape.table) * shape.kernelSize ** 2;
  const flatSize = ALIGN + aligned(wSize) + aligned(k);
  const fill = new Float32Array(flatSize).fill(SENTINEL);
  const flat = tensorFrom(rt, [flatSize], fill, "flat params");
  const flatGrad = tensorFrom(rt, [flatSize], fill, "flat grads");
  const wOffset = ALIGN, bOffset = ALIGN + aligned(wSize);
  const wShape = [connectionsOf(shape.table), shape.kernelSize, shape.kernelSize];
  const b: Omit<Bound, "ops"> = {
    rt,
    x: tensorFrom(rt, [...shape.x], new Float32Array(numel(shape.x)), "x"),
    y: tensorFrom(rt, yShape, new Float32Array(numel(yShape)), "y"),
    dy: tensorFrom(rt, yShape, new Float32Array(numel(yShape)), "dy"),
    dx: tensorFrom(rt, [...shape.x], new Float32Array(numel(shape.x)), "dx"),
    weight: view(flat, wOffset, wShape, "weight"),
    bias: view(flat, bOffset, [k], "bias"),
    dweight: view(flatGrad, wOffset, wShape, "dweight"),
    dbias: view(flatGrad, bOffset, [k], "dbias"),
    flatGrad,
  };
  const layer = conv2dTable({
    inChannels: shape.x[1],
    table: shape.table,
    kernelSize: shape.kernelSize,
  });
  const ops = await buildLayer(tier, layer, {
    rt,
    x: b.x,
    y: b.y,
    dy: b.dy,
    dx: b.dx,
    params: { weight: b.weight, bias: b.bias },
    grads: { weight: b.dweight, bias: b.dbias },
  });
  return { ...b, ops };
}

interface Data {
  x: Float32Array<ArrayBuffer>;
  weight: Float32Array<ArrayBuffer>;
  bias: Float32Array<ArrayBuffer>;
  dy: Float32Array<ArrayBuffer>;
}

function randomData(shape: Conv2dTableShape, seed: number): Data {
  const rng = random(seed);
  return {
    x: floats(rng, numel(shape.x)),
    weight: floats(rng, connectionsOf(shape.table) * shape.kernelSize ** 2),
    bias: floats(rng, shape.table.length),
    dy: floats(rng, numel(conv2dTableOutputShape(shape))),
  };
}

/** Runs forward then backward on `data`; outputs are NaN-filled first so a skipped store shows. */
async function run(b: Bound, data: Data) {
  const { rt } = b;
  upload(rt, b.x, data.x);
  upload(rt, b.weight, data.weight);
  upload(rt, b.bias, data.bias);
  upload(rt, b.dy, data.dy);
  upload(rt, b.y, new Float32Array(b.y.size).fill(NaN));
  upload(rt, b.dx, new Float32Array(b.dx.size).fill(NaN));
  upload(rt, b.dweight, new Float32Array(b.dweight.size).fill(NaN));
  upload(rt, b.dbias, new Float32Array(b.dbias.size).fill(NaN));
  submit(rt, [...b.ops.train, ...b.ops.backward]);
  await idle(rt);
  const flatGrad = await readback(rt, b.flatGrad);
  const inside = (t: Tensor, i: number) => i >= t.offset && i < t.offset + t.size;
  if (flatGrad.some((v, i) => !inside(b.dweight, i) && !inside(b.dbias, i) && v !== SENTINEL)) {
    throw new Error("backward_weight wrote outside the dw and db views");
  }
  return {
    y: await readback(rt, b.y),
    dx: await readback(rt, b.dx),
    dw: flatGrad.slice(b.dweight.offset, b.dweight.offset + b.dweight.size),
    db: flatGrad.slice(b.dbias.offset, b.dbias.offset + b.dbias.size),
  };
}

/**
 * f32 against float64 for sums of `terms` products of values in [-1, 1]: the error grows
 * like terms * 6e-8; the tolerance allows 16 times that (plus 1e-6 for short sums).
 */
function sumTolerance(terms: number): Tolerance {
  return { atol: 1e-6 + 16 * 6e-8 * terms, rtol: 1e-5 };
}

/** The largest number of connections reading one input map (backward_input's sum over k). */
function readers(table: Table, c: number): number {
  return Math.max(
    ...Array.from({ length: c }, (_, ch) => table.filter((r) => r.includes(ch)).length),
  );
}

async function checkAgainstReference(
  shape: Conv2dTableShape,
  why: string,
  tier: Tier,
  seed = 1,
) {
  const data = randomData(shape, seed);
  const got = await run(await bind(shape, tier), data);
  why = `${tier.name}: ${why}`;
  const [n, , p, q] = conv2dTableOutputShape(shape);
  const rr = shape.kernelSize ** 2;
  const widest = Math.max(...shape.table.map((r) => r.length));
  assertClose(got.y, conv2dTableForward(shape, data), sumTolerance(widest * rr), `${why}: y`);
  assertClose(
    got.dx,
    conv2dTableBackwardInput(shape, data),
    sumTolerance(readers(shape.table, shape.x[1]) * rr),
    `${why}: dx`,
  );
  const want = conv2dTableBackwardWeight(shape, data);
  assertClose(got.dw, want.dw, sumTolerance(n * p * q), `${why}: dw`);
  assertClose(got.db, want.db, sumTolerance(n * p * q), `${why}: db`);
}

Deno.test("LeCun's C3 table has Table I's 60 connections: 1,516 parameters", () => {
  const layer = conv2dTable({ inChannels: 6, table: LECUN_C3_TABLE, kernelSize: 5 });
  const count = layer.params.reduce((a, p) => a + numel(p.shape), 0);
  if (layer.params[0].shape.join() !== "60,5,5" || count !== 1516) {
    throw new Error(`weight [${layer.params[0].shape}], ${count} parameters`);
  }
  // Table I's pattern: 6 maps of 3 contiguous inputs, 6 of 4 contiguous, 3 of 4, 1 of all 6;
  // every S2 map feeds 10 C3 maps.
  const sizes = LECUN_C3_TABLE.map((r) => r.length).join("");
  const contiguous = (r: readonly number[], from: number) =>
    r.length === new Set(r.map((c) => (c - from + 6) % 6)).size &&
    r.every((c) => (c - from + 6) % 6 < r.length);
  const ok = sizes === "3333334444444446" &&
    LECUN_C3_TABLE.slice(0, 12).every((r, k) => contiguous(r, k % 6)) &&
    LECUN_C3_TABLE.slice(12, 15).every((r, k) => !contiguous(r, k)) &&
    [0, 1, 2, 3, 4, 5].every((c) => LECUN_C3_TABLE.filter((r) => r.includes(c)).length === 10);
  if (!ok) throw new Error(`not Table I: ${JSON.stringify(LECUN_C3_TABLE)}`);
});

Deno.test("the table reference equals the dense Conv2d reference with zeros for missing connections (f64)", () => {
  const shape: Conv2dTableShape = { x: [2, 6, 9, 8], table: LECUN_C3_TABLE, kernelSize: 3 };
  const dense: Conv2dShape = { x: shape.x, weight: [16, 6, 3, 3], stride: 1, padding: 0 };
  const data = randomData(shape, 3);
  const weight = denseWeightOfTable(shape, data.weight);
  const exact = { atol: 1e-12, rtol: 1e-12 };
  assertClose(
    conv2dTableForward(shape, data),
    conv2dForward(dense, { ...data, weight }),
    exact,
    "y",
  );
  assertClose(
    conv2dTableBackwardInput(shape, data),
    conv2dBackwardInput(dense, { ...data, weight }),
    exact,
    "dx",
  );
  const table = conv2dTableBackwardWeight(shape, data);
  const full = conv2dBackwardWeight(dense, data);
  // The dense dw at the connections, in table order, is the table dw.
  const gathered = LECUN_C3_TABLE.flatMap((inputs, k) =>
    inputs.flatMap((c) => [...full.dw.subarray((k * 6 + c) * 9, (k * 6 + c + 1) * 9)])
  );
  assertClose(table.dw, gathered, exact, "dw");
  assertClose(table.db, full.db, exact, "db");
});

Deno.test("conv2d_table reference backward matches central finite differences (f64)", () => {
  const shape: Conv2dTableShape = {
    x: [2, 3, 5, 6],
    table: [[0, 2], [1], [0, 1, 2]],
    kernelSize: 3,
  };
  const data = randomData(shape, 4);
  const x = Float64Array.from(data.x), weight = Float64Array.from(data.weight);
  const bias = Float64Array.from(data.bias), r = Float64Array.from(data.dy);
  const loss = (t: { x: Float64Array; weight: Float64Array; bias: Float64Array }) =>
    dot(conv2dTableForward(shape, t), r);
  const eps = 1e-6;
  const fd = (which: "x" | "weight" | "bias") => {
    const base = { x, weight, bias };
    return base[which].map((_, i) => {
      const at = (d: number) =>
        loss({ ...base, [which]: base[which].map((v, j) => j === i ? v + d : v) });
      return (at(eps) - at(-eps)) / (2 * eps);
    });
  };
  // Linear in each argument: only rounding, ~1e-10.
  const tol = { atol: 1e-8, rtol: 1e-8 };
  assertClose(conv2dTableBackwardInput(shape, { dy: r, weight }), fd("x"), tol, "dx");
  const { dw, db } = conv2dTableBackwardWeight(shape, { x, dy: r });
  assertClose(dw, fd("weight"), tol, "dw");
  assertClose(db, fd("bias"), tol, "db");
});

Deno.test(
  "conv2d_table forward and backward match the reference for LeCun's C3 at batch 1, 3 and 33, both tiers",
  gpuTest,
  async () => {
    for (const tier of TIERS) {
      for (const n of [1, 3, 33]) {
        await checkAgainstReference(
          { x: [n, 6, 14, 14], table: LECUN_C3_TABLE, kernelSize: 5 },
          `C3 batch ${n}`,
          tier,
        );
      }
    }
  },
);

Deno.test(
  "conv2d_table matches the reference for random tables, odd sizes and kernels 1 to 8, both tiers",
  gpuTest,
  async () => {
    const rng = random(5);
    const cases: { x: [number, number, number, number]; k: number; r: number; why: string }[] = [
      { x: [2, 5, 9, 11], k: 7, r: 3, why: "a row of 9 outputs: a full block of 8 and one of 1" },
      { x: [3, 3, 4, 6], k: 5, r: 1, why: "1x1 kernels, rows shorter than a block" },
      { x: [2, 4, 10, 9], k: 3, r: 8, why: "8x8 kernels (the most backward_weight keeps)" },
      { x: [5, 7, 7, 17], k: 9, r: 4, why: "17 input columns: three blocks in backward_input" },
    ];
    for (const c of cases) {
      const table = randomTable(rng, c.x[1], c.k);
      for (const tier of TIERS) {
        await checkAgainstReference(
          { x: c.x, table, kernelSize: c.r },
          `${c.why} ${JSON.stringify(table)}`,
          tier,
        );
      }
    }
  },
);

Deno.test(
  "conv2d_table on the GPU equals the dense conv2d on the GPU with zero weights for missing connections",
  gpuTest,
  async () => {
    const shape: Conv2dTableShape = { x: [32, 6, 14, 14], table: LECUN_C3_TABLE, kernelSize: 5 };
    const data = randomData(shape, 6);
    const table = await run(await bind(shape), data);
    const rt = await testRuntime();
    const t = (s: number[], values?: Float32Array<ArrayBuffer>) =>
      tensorFrom(rt, s, values ?? new Float32Array(numel(s)));
    const yShape = [32, 16, 10, 10];
    const dense = {
      x: t([...shape.x], data.x),
      y: t(yShape),
      dy: t(yShape, data.dy),
      dx: t([...shape.x]),
      weight: t([16, 6, 5, 5], Float32Array.from(denseWeightOfTable(shape, data.weight))),
      bias: t([16], data.bias),
      dweight: t([16, 6, 5, 5]),
      dbias: t([16]),
    };
    const ops = await conv2d({ inChannels: 6, outChannels: 16, kernelSize: 5 }).build({
      rt,
      ...dense,
      params: { weight: dense.weight, bias: dense.bias },
      grads: { weight: dense.dweight, bias: dense.dbias },
    });
    submit(rt, [...ops.train, ...ops.backward]);
    const dw = await readback(rt, dense.dweight);
    const gathered = LECUN_C3_TABLE.flatMap((inputs, k) =>
      inputs.flatMap((c) => [...dw.subarray((k * 6 + c) * 25, (k * 6 + c + 1) * 25)])
    );
    // Both are f32 sums of the same products in different orders (the dense one adds exact
    // zeros): they differ by rounding only, as each does from the float64 reference.
    assertClose(table.y, await readback(rt, dense.y), sumTolerance(6 * 25), "y");
    assertClose(table.dx, await readback(rt, dense.dx), sumTolerance(10 * 25), "dx");
    assertClose(table.dw, gathered, sumTolerance(3200), "dw");
    assertClose(table.db, await readback(rt, dense.dbias), sumTolerance(3200), "db");
  },
);

Deno.test("conv2d_table kernels index over a 2-D grid of workgroups", gpuTest, async () => {
  const rt = await testRuntime();
  const shape: Conv2dTableShape = { x: [3, 6, 14, 14], table: LECUN_C3_TABLE, kernelSize: 5 };
  const data = randomData(shape, 7);
  const t = (s: number[], values?: Float32Array<ArrayBuffer>) =>
    tensorFrom(rt, s, values ?? new Float32Array(numel(s)));
  const yShape = [3, 16, 10, 10];
  const [x, w, b, y, dy, dx, dw, db] = [
    t([...shape.x], data.x),
    t([60, 5, 5], data.weight),
    t([16], data.bias),
    t(yShape),
    t(yShape, data.dy),
    t([...shape.x]),
    t([60, 5, 5]),
    t([16]),
  ];
  const words = conv2dTableWords(LECUN_C3_TABLE, 6);
  const table = tensorFrom(rt, [words.length], words);
  const u = uniform(rt, "c3", {
    batch: 3,
    in_channels: 6,
    height: 14,
    width: 14,
    out_channels: 16,
    out_height: 10,
    out_width: 10,
    connections: 60,
  });
  const k = (entry: string, constants: Record<string, number>) =>
    kernel(rt, "conv2d_table.wgsl", entry, constants);
  // forward: 16 * 30 rows * 2 blocks = 960 invocations = 15 workgroups, as 4 x 4;
  // backward_input: 6 * 42 * 2 = 504 = 8 workgroups, as 3 x 3; backward_weight: 316 blocks
  // of SPLIT 8 = 40 workgroups, as 7 x 6.
  submit(rt, [
    op(rt, await k("forward", { WORKGROUP: 64, KERNEL: 5 }), [x, w, b, y, table, u], [4, 4]),
    op(rt, await k("backward_input", { WORKGROUP: 64, KERNEL: 5 }), [dy, w, dx, table, u], [3, 3]),
    op(rt, await k("backward_weight", { WORKGROUP: 64, KERNEL: 5, SPLIT: 8 }), [
      x,
      dy,
      dw,
      db,
      table,
      u,
    ], [
      7,
      6,
    ]),
  ]);
  assertClose(await readback(rt, y), conv2dTableForward(shape, data), sumTolerance(150), "y");
  assertClose(
    await readback(rt, dx),
    conv2dTableBackwardInput(shape, data),
    sumTolerance(250),
    "dx",
  );
  const want = conv2dTableBackwardWeight(shape, data);
  assertClose(await readback(rt, dw), want.dw, sumTolerance(300), "dw");
  assertClose(await readback(rt, db), want.db, sumTolerance(300), "db");
});

Deno.test(
  "conv2d_table GPU backward matches a directional derivative of the GPU forward",
  gpuTest,
  async () => {
    const shape: Conv2dTableShape = { x: [32, 6, 14, 14], table: LECUN_C3_TABLE, kernelSize: 5 };
    const data = randomData(shape, 8);
    const rng = random(9);
    const b = await bind(shape);
    const dir = {
      x: floats(rng, data.x.length),
      weight: floats(rng, data.weight.length),
      bias: floats(rng, data.bias.length),
    };
    const eps = 1e-2;
    const lossAt = async (s: number) => {
      const at = (key: "x" | "weight" | "bias") => data[key].map((v, i) => v + s * dir[key][i]);
      upload(b.rt, b.x, at("x"));
      upload(b.rt, b.weight, at("weight"));
      upload(b.rt, b.bias, at("bias"));
      submit(b.rt, b.ops.train);
      return dot(await readback(b.rt, b.y), data.dy);
    };
    const fd = (await lossAt(eps) - await lossAt(-eps)) / (2 * eps);
    const got = await run(b, data);
    const analytic = dot(got.dx, dir.x) + dot(got.dw, dir.weight) + dot(got.db, dir.bias);
    // Bilinear in (x, w): the central difference is exact up to f32 rounding of y (~1e-6 for
    // sums of ~100 products, 51,200 outputs) over eps: ~1e-2, against <grad, v> of ~1e3. Measured 1.1e-3.
    assertClose([fd], [analytic], { atol: 5e-2, rtol: 1e-5 }, "<grad, v>");
  },
);
