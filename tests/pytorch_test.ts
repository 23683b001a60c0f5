import { join } from "node:path";
import { trainedRun } from "./util/synthetic.ts";
import { assertClose } from "./util/assert_close.ts";
import { findPython } from "./pytorch/python.ts";

const python = await findPython(["torch"]);

Deno.test({
  name: "PyTorch's seed model loads our checkpoint with strict=True and scores it as we do",
  ignore: !python,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { dir, run } = await trainedRun({ train: 160, test: 70 });
    const script = new URL("./pytorch/load_checkpoint.py", import.meta.url).pathname;
    const r = await new Deno.Command(python!, {
      args: [
        script,
        join(run, "model.safetensors"),
        join(dir, "data", "mnist", "test.safetensors"),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
    const torch = JSON.parse(new TextDecoder().decode(r.stdout));
    const ours = JSON.parse(await Deno.readTextFile(join(run, "metrics.json")))[0];
    if (torch.tensors !== 16) throw new Error(`PyTorch read ${torch.tensors} tensors`);
    assertClose(
      [torch.accuracy],
      [ours.test_acc],
      { atol: 0, rtol: 0 },
      "test accuracy, PyTorch vs ours",
    );
    // f32 in both; different summation orders: 1e-5 absolute on a loss near 2.
    assertClose(
      [torch.loss],
      [ours.test_loss],
      { atol: 1e-5, rtol: 0 },
      "test loss, PyTorch vs ours",
    );
    await Deno.remove(dir, { recursive: true });
  },
});
