/**
 * Compares our GPU t-SNE with scikit-learn's TSNE (through python3, when sklearn is
 * installed: Debian's python3-sklearn) and with tsne-js, on the same points: seconds, KL
 * and the share of each point's 10 nearest 2-D neighbours that carry its label.
 *
 *   deno run -A bench/tsne_compare.ts --data clusters --sizes 1000,5000,10000
 *   deno run -A bench/tsne_compare.ts --data mnist --source data --dim 10
 *   deno run -A bench/tsne_compare.ts --embeddings runs/a/embed/embeddings.safetensors
 *
 * Data: `clusters` (10 Gaussian clusters in `dim` dimensions, seeded), `mnist` (the first
 * training images, normalized by the data file's own mean and std, through a seeded Gaussian
 * random projection to `dim` dimensions) or `--embeddings` (tensors "embeddings" F32 [N,D] and
 * "labels" U8 [N]). Run with `--help` for the options.
 *
 * KL columns: "own" is what each program reports (each over its own P: sklearn and ours
 * over the k-nearest-neighbour P, tsne-js over the dense P of all pairs); "common" is
 * KL(P||Q) of each embedding against one P, ours, computed in float64 on the CPU.
 * tsne-js runs only up to --tsne-js-max points (a minute for 1,000 here, O(N^2) time and
 * memory); past it its time is extrapolated from the largest size run and marked "est.".
 * @module
 */

import { Command, Option } from "@commander-js/extra-typings";
import { createRuntime } from "../lib/device.ts";
import { random } from "../lib/random.ts";
import { tsne } from "../lib/tsne/tsne.ts";
import { jointProbabilities, tsneAffinities } from "../lib/tsne/affinities.ts";
import { klDivergence, neighbourAgreement } from "../lib/tsne/quality.ts";
import { tsneJs } from "../lib/tsne/tsne_js.ts";
import { findPython } from "../tests/pytorch/python.ts";
import { loadDataset } from "../lib/io/mnist.ts";
import { readSafetensorsFile } from "../lib/io/files.ts";
import { getTensor } from "../lib/io/safetensors.ts";
import {
  choiceList,
  nonNegativeInt,
  positiveInt,
  positiveIntList,
} from "../scripts/cli_options.ts";
import { runMain } from "../scripts/terminal.ts";

const METHODS = ["webgpu", "sklearn", "tsne-js"] as const;

const program = new Command()
  .name("deno run -A bench/tsne_compare.ts")
  .description(
    "Our GPU t-SNE against scikit-learn's TSNE and tsne-js on the same points: seconds, KL " +
      "and the share of each point's 10 nearest 2-D neighbours that carry its label.",
  )
  .addOption(
    new Option("--data <kind>", "the points: 10 Gaussian clusters, or MNIST's training images")
      .choices(["clusters", "mnist"] as const).default("clusters" as const),
  )
  .addOption(
    new Option("--sizes <list>", "numbers of points, comma-separated")
      .argParser(positiveIntList("--sizes")).default([1000, 5000, 10000], "1000,5000,10000"),
  )
  .option(
    "--dim <n>",
    "dimensions of the clusters, or of MNIST's random projection",
    positiveInt("--dim"),
    10,
  )
  .option("--source <dir>", "folder of the data files, for --data mnist", "data")
  .option(
    "--embeddings <file>",
    'a safetensors file of "embeddings" F32 [N,D] and "labels" U8 [N] (instead of --data)',
  )
  .addOption(
    new Option("--methods <list>", `methods, comma-separated: ${METHODS.join(", ")}`)
      .argParser(choiceList("--methods", METHODS)).default([...METHODS], METHODS.join(",")),
  )
  .option(
    "--tsne-js-max <n>",
    "most points tsne-js runs on; past it its time is extrapolated",
    nonNegativeInt("--tsne-js-max"),
    1000,
  )
  .option(
    "--seed <n>",
    "seed of the clusters, the projection and the t-SNE starts",
    nonNegativeInt("--seed"),
    42,
  )
  .showHelpAfterError();
const args = program.parse(["deno", "tsne_compare", ...Deno.args]).opts();

interface Points {
  data: Float32Array;
  labels: Uint8Array;
  dim: number;
}

interface Row {
  method: string;
  n: number;
  seconds: number;
  estimated?: boolean;
  kl?: number;
  common?: number;
  agreement?: number;
}

// scikit-learn's run, given n, dim and a path prefix (.in: the float32 points, .out: theirs).
const SKLEARN = `
import inspect, json, sys, time
import numpy as np
from sklearn.manifold import TSNE
n, dim, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
x = np.fromfile(path + ".in", dtype=np.float32).reshape(n, dim)
iters = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"
model = TSNE(n_components=2, perplexity=30, random_state=42, learning_rate=200, init="pca",
             **{iters: 300})
start = time.perf_counter()
y = model.fit_transform(x)
seconds = time.perf_counter() - start
y.astype(np.float32).tofile(path + ".out")
print(json.dumps({"seconds": seconds, "kl": float(model.kl_divergence_)}))
`;

async function main(): Promise<void> {
  const { sizes, methods } = args;
  const largest = Math.max(...sizes);
  const points = await loadPoints(largest);
  const rt = await createRuntime("auto");
  const python = methods.includes("sklearn") ? await findPython(["sklearn"]) : undefined;
  console.log(
    `adapter: ${rt.description}; data: ${describe(points)}; sklearn: ${python ?? "not found"}`,
  );

  const rows: Row[] = [];
  let tsneJsLast: Row | undefined;
  for (const n of sizes) {
    const data = points.data.subarray(0, n * points.dim);
    const labels = points.labels.subarray(0, n);
    const dim = points.dim;
    const joint = jointProbabilities(await tsneAffinities(rt, data, { n, dim, perplexity: 30 }), {
      n,
    });
    const measure = (method: string, seconds: number, embedding: Float32Array, kl?: number) => {
      const row = {
        method,
        n,
        seconds,
        kl,
        common: klDivergence(embedding, joint),
        agreement: neighbourAgreement(embedding, labels, { k: 10 }),
      };
      rows.push(row);
      console.log(format(row));
      return row;
    };
    if (methods.includes("webgpu")) {
      // Once to compile the kernels (and fill Mesa's shader cache), then timed.
      if (n === sizes[0]) await tsne(rt, data, { n, dim, iterations: 1 });
      const result = await tsne(rt, data, { n, dim, seed: args.seed });
      measure("webgpu (ours, exact gradient)", result.seconds, result.points, result.kl);
    }
    if (python) {
      const result = await sklearn(python, data, { n, dim });
      measure("scikit-learn (barnes_hut)", result.seconds, result.points, result.kl);
    }
    if (methods.includes("tsne-js")) {
      if (n <= args.tsneJsMax) {
        const result = tsneJs(data, { n, dim, seed: args.seed });
        tsneJsLast = measure("tsne-js", result.seconds, result.points, result.kl);
      } else if (tsneJsLast) {
        const row = {
          method: "tsne-js",
          n,
          seconds: tsneJsLast.seconds * (n / tsneJsLast.n) ** 2,
          estimated: true,
        };
        rows.push(row);
        console.log(format(row));
      }
    }
  }

  console.log("\n| method | N | seconds | KL (own) | KL (common P) | 10-NN label agreement |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const row of rows) console.log(format(row));
}

function format(row: Row): string {
  const f = (v: number | undefined, d: number) => v === undefined ? "" : v.toFixed(d);
  const seconds = row.estimated ? `~${row.seconds.toFixed(0)} (est.)` : row.seconds.toFixed(2);
  const agreement = row.agreement === undefined ? "" : `${(100 * row.agreement).toFixed(1)}%`;
  return `| ${row.method} | ${row.n} | ${seconds} | ${f(row.kl, 4)} | ${
    f(row.common, 4)
  } | ${agreement} |`;
}

function describe(points: Points): string {
  if (args.embeddings) return `${args.embeddings} (${points.dim}-D)`;
  return args.data === "mnist"
    ? `MNIST train images, random projection to ${points.dim}-D`
    : `10 Gaussian clusters in ${points.dim}-D`;
}

async function loadPoints(n: number): Promise<Points> {
  if (args.embeddings) {
    const file = await readSafetensorsFile(args.embeddings);
    const e = getTensor(file, "embeddings", "F32", { rank: 2, name: args.embeddings });
    const l = getTensor(file, "labels", "U8", { rank: 1, name: args.embeddings });
    if (e.shape[0] < n) throw new Error(`${args.embeddings}: ${e.shape[0]} points, need ${n}`);
    return { data: e.data, labels: l.data, dim: e.shape[1] };
  }
  const dim = args.dim;
  const rng = random(args.seed);
  const data = new Float32Array(n * dim);
  const labels = new Uint8Array(n);
  if (args.data === "mnist") {
    const { train, normalization } = await loadDataset(args.source, "mnist");
    const pixels = 28 * 28;
    const projection = Float32Array.from(
      { length: pixels * dim },
      () => rng.normal() / Math.sqrt(dim),
    );
    // Normalized pixels (x / 255 - mean) / std: the mean shifts every point by the same
    // vector, which changes no distance, so it is left out and the zero pixels skipped.
    for (let i = 0; i < n; i++) {
      labels[i] = train.labels[i];
      for (let p = 0; p < pixels; p++) {
        const x = train.images[i * pixels + p] / 255 / normalization.std;
        if (x === 0) continue;
        for (let c = 0; c < dim; c++) data[i * dim + c] += x * projection[p * dim + c];
      }
    }
    return { data, labels, dim };
  }
  const centres = Array.from(
    { length: 10 },
    () => Array.from({ length: dim }, () => 3 * rng.normal()),
  );
  for (let i = 0; i < n; i++) {
    labels[i] = rng.int(10);
    for (let c = 0; c < dim; c++) data[i * dim + c] = centres[labels[i]][c] + rng.normal();
  }
  return { data, labels, dim };
}

// The seed's call: TSNE(n_components=2, perplexity=30, random_state=42, max_iter=300,
// learning_rate=200), timed around fit_transform only.
async function sklearn(python: string, data: Float32Array, shape: { n: number; dim: number }) {
  const path = await Deno.makeTempFile({ prefix: "tsne_compare_" });
  try {
    await Deno.writeFile(
      `${path}.in`,
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    const output = await new Deno.Command(python, {
      args: ["-c", SKLEARN, String(shape.n), String(shape.dim), path],
    }).output();
    if (!output.success) {
      throw new Error(`sklearn failed: ${new TextDecoder().decode(output.stderr)}`);
    }
    const { seconds, kl } = JSON.parse(new TextDecoder().decode(output.stdout));
    const points = new Float32Array((await Deno.readFile(`${path}.out`)).buffer);
    return { seconds: seconds as number, kl: kl as number, points };
  } finally {
    for (const p of [path, `${path}.in`, `${path}.out`]) await Deno.remove(p).catch(() => {});
  }
}

if (import.meta.main) await runMain(main);
