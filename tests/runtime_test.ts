import { assertClose } from "./util/assert_close.ts";
import { gpuTest, testRuntime } from "./util/gpu.ts";
import {
  checked,
  grid,
  kernel,
  op,
  readback,
  submit,
  tensor,
  uniform,
  upload,
} from "../lib/runtime.ts";

Deno.test("runtime compiles a kernel once and names it in errors", gpuTest, async () => {
  const rt = await testRuntime();
  const a = await kernel(rt, "relu.wgsl", "forward", { WORKGROUP: 64, ELEMENTS: 1 });
  const b = await kernel(rt, "relu.wgsl", "forward", { WORKGROUP: 64, ELEMENTS: 1 });
  if (a !== b) throw new Error("the pipeline cache returned a new pipeline");
  let message = "";
  try {
    await kernel(rt, "relu.wgsl", "no_such_entry");
  } catch (e) {
    message = String(e);
  }
  if (!message.includes("relu.wgsl:no_such_entry")) {
    throw new Error(`the error does not name the kernel: ${message}`);
  }
});

Deno.test("runtime op runs over a 2-D grid past one workgroup row", gpuTest, async () => {
  const rt = await testRuntime();
  const n = 1000;
  const x = tensor(rt, [n], { label: "x" });
  const y = tensor(rt, [n], { label: "y" });
  const data = new Float32Array(n).map((_, i) => i - 500);
  upload(rt, x, data);
  const k = await kernel(rt, "relu.wgsl", "forward", { WORKGROUP: 64, ELEMENTS: 1 });
  const u = uniform(rt, "relu", { count: n });
  // 16 workgroups as 4 per row forces more rows of the grid.
  const [gx, gy] = grid(n, 64);
  submit(rt, [op(rt, k, [x, y, u], [Math.min(gx, 4), Math.ceil(gx / 4) * gy])]);
  const want = data.map((v) => Math.max(v, 0));
  assertClose(await readback(rt, y), want, { atol: 0, rtol: 0 }, "y = relu(x)");
});

Deno.test(
  "a validation error inside checked() is thrown with the name of what was built",
  gpuTest,
  async () => {
    const rt = await testRuntime();
    const k = await kernel(rt, "relu.wgsl", "forward", { WORKGROUP: 64, ELEMENTS: 1 });
    const x = tensor(rt, [4], { label: "x" });
    let message = "";
    try {
      // The uniform binding is missing: the bind group does not match the kernel's layout.
      await checked(rt, "features.9 (ReLU)", () => op(rt, k, [x, x], 1));
    } catch (e) {
      message = String(e);
    }
    if (!message.includes("features.9 (ReLU)")) throw new Error(`not named: ${message}`);
  },
);
