import { assertClose } from "./util/assert_close.ts";
import { gpuTest, testRuntime } from "./util/gpu.ts";
import { matmul } from "../lib/cpu/matmul.ts";
import { random } from "../lib/random.ts";
import { readback, submit, tensor, upload } from "../lib/runtime.ts";

/** C = A B in float64, the plain triple loop. */
function matmulReference(a: Float32Array, b: Float32Array, m: number, k: number, n: number) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t] * b[t * n + j];
      c[i * n + j] = s;
    }
  }
  return c;
}

async function check(m: number, k: number, n: number, quads: { rows: number; cols: number }) {
  const rt = await testRuntime();
  const rng = random(m * 7 + n);
  const a = Float32Array.from({ length: m * k }, () => rng.uniform(-1, 1));
  const b = Float32Array.from({ length: k * n }, () => rng.uniform(-1, 1));
  const at = tensor(rt, [m, k], { label: "A" });
  const bt = tensor(rt, [k, n], { label: "B" });
  upload(rt, at, a);
  upload(rt, bt, b);
  const { ops, c } = await matmul(rt, at, bt, quads);
  submit(rt, ops);
  // Sums of k products of values in [-1, 1]: f32 rounding grows like sqrt(k) ulps of k.
  assertClose(
    await readback(rt, c),
    matmulReference(a, b, m, k, n),
    { atol: 1e-6 * k, rtol: 0 },
    `C [${m},${n}], K ${k}, blocks ${quads.rows}x${quads.cols} quads`,
  );
}

Deno.test(
  "matmul matches the reference where blocks cut rows and columns, across texture rows",
  gpuTest,
  async () => {
    // 37 rows and 44 columns: the last blocks of 16 are partial at both ends.
    await check(37, 20, 44, { rows: 4, cols: 4 });
    await check(5, 8, 12, { rows: 2, cols: 1 });
    await check(3, 4, 4, { rows: 1, cols: 4 });
    // A has 160 x 100 / 4 = 4,000 texels: its mirror spans 4 rows of 1,024 texels.
    await check(160, 100, 36, { rows: 4, cols: 2 });
  },
);

Deno.test("matmul rejects shapes it does not take", gpuTest, async () => {
  const rt = await testRuntime();
  const a = tensor(rt, [4, 6]);
  const b = tensor(rt, [6, 4]);
  let message = "";
  try {
    await matmul(rt, a, b);
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes("multiples of 4")) throw new Error(`unexpected: "${message}"`);
});
