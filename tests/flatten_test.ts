import { gpuTest, testRuntime } from "./util/gpu.ts";
import { tensor } from "../lib/runtime.ts";
import { flatten } from "../lib/layers/flatten.ts";

Deno.test(
  "flatten joins all but the batch dimension and makes no ops (an alias)",
  gpuTest,
  async () => {
    const layer = flatten();
    const shapes = [
      [[32, 32, 1, 1], [32, 32]],
      [[1, 16, 5, 5], [1, 400]],
      [[3, 7], [3, 7]],
    ];
    for (const [input, expected] of shapes) {
      const got = layer.outputShape(input);
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        throw new Error(`outputShape([${input}]) = [${got}], expected [${expected}]`);
      }
    }
    if (layer.alias !== true || layer.type !== "Flatten" || layer.params.length !== 0) {
      throw new Error("Flatten must be a parameterless alias, so that the model passes a view");
    }
    const rt = await testRuntime();
    const x = tensor(rt, [2, 3, 1, 1]);
    const ops = await layer.build({ rt, x, y: x, dy: x, dx: x, params: {}, grads: {} });
    if (ops.train.length + ops.eval.length + ops.backward.length !== 0) {
      throw new Error("Flatten must make no ops");
    }
  },
);
