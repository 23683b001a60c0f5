import { join } from "node:path";
import { runScript, trainedRun } from "./util/synthetic.ts";
import { readSafetensorsFile } from "../lib/io/files.ts";

const cli = { sanitizeResources: false, sanitizeOps: false };

Deno.test(
  "embed writes the embeddings, labels and 2-D map of the first images, for logits and features",
  cli,
  async () => {
    const { dir, run } = await trainedRun({ train: 120, test: 40 });
    for (const [layer, dim] of [["logits", 10], ["features", 32]] as const) {
      const args = [
        "--run",
        run,
        "--data",
        join(dir, "data"),
        "--count",
        "100",
        "--perplexity",
        "10",
        "--iterations",
        "60",
      ];
      const r = await runScript("embed.ts", [...args, "--layer", layer]);
      if (r.code !== 0) throw new Error(r.stderr);
      const file = await readSafetensorsFile(join(run, "embed", "embeddings.safetensors"));
      const shapes = ["embeddings", "labels", "tsne"].map((k) =>
        `${k} ${file.tensors.get(k)?.dtype} [${file.tensors.get(k)?.shape}]`
      );
      const expected = [`embeddings F32 [100,${dim}]`, "labels U8 [100]", "tsne F32 [100,2]"];
      if (shapes.join() !== expected.join()) throw new Error(`${layer}: ${shapes}`);
      const points = file.tensors.get("tsne")!.data as Float32Array;
      if (!points.every(Number.isFinite)) {
        throw new Error(
          `${layer}: the map has non-finite points`,
        );
      }
      if (file.metadata.layer !== layer || !(Number(file.metadata.kl) >= 0)) {
        throw new Error(
          JSON.stringify(file.metadata),
        );
      }
    }
    const svg = await Deno.readTextFile(join(run, "embed", "tsne.svg"));
    if ((svg.match(/<circle/g) ?? []).length < 100) {
      throw new Error(
        "tsne.svg does not draw every point",
      );
    }
    const bad = await runScript("embed.ts", [
      "--run",
      run,
      "--data",
      join(dir, "data"),
      "--count",
      "20",
    ]);
    if (
      bad.code === 0 ||
      !bad.stderr.includes("--perplexity 30 must be below the number of points (20)")
    ) {
      throw new Error(`exit ${bad.code}: ${bad.stderr}`);
    }
    await Deno.remove(dir, { recursive: true });
  },
);
