import { gpuBench } from "./util.ts";
import { grid, kernel, op, tensor, uniform } from "../lib/runtime.ts";
import { createRuntime } from "../lib/device.ts";

const rt = createRuntime("auto");
const n = 32 * 16 * 13 * 13;

gpuBench("dispatch: relu 86,528 floats", rt, async (rt) => {
  const x = tensor(rt, [n]);
  const y = tensor(rt, [n]);
  const k = await kernel(rt, "relu.wgsl", "forward", { WORKGROUP: 64, ELEMENTS: 1 });
  const u = uniform(rt, "relu", { count: n });
  return { ops: [op(rt, k, [x, y, u], grid(n, 64))], work: { bytes: 8 * n } };
});
