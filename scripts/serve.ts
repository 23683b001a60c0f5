/**
 * `deno task serve`: the page of web/ on a local server. Bundles web/main.ts for the browser
 * at start, downloads MNIST first when it is missing (as train does), then serves the page,
 * kernels/, the data files and the run folders, nothing else: any other path, `..` encoded
 * or not included, gets 404.
 * @module
 */

import { Command } from "@commander-js/extra-typings";
import { join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { exists, readSafetensorsFile } from "../lib/io/files.ts";
import { prepareDataset } from "../lib/io/mnist.ts";
import { nonNegativeInt } from "./cli_options.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** What the server serves, from where. */
export interface SiteOptions {
  /** web/: index.html and style.css. */
  web: string;
  /** The bundle of web/main.ts (JavaScript). */
  bundle: string;
  kernels: string;
  /** The data root (holds <dataset>/{train,test}.safetensors). */
  data: string;
  runs: string;
}

/** One entry of /runs/index.json: what the page lists. */
export interface RunSummary {
  name: string;
  model: string;
  epochs: number | null;
  testAccuracy: number | null;
  dataset: string;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".wgsl": "text/plain; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".safetensors": "application/octet-stream",
};
/** The files of a run folder the page may read. */
const RUN_FILES = new Set(["model.safetensors", "metrics.json", "curves.svg"]);
const DATA_FILES = new Set(["train.safetensors", "test.safetensors"]);

/**
 * The request handler: GET (and HEAD) of
 * `/` (the page), `/web/<file>`, `/kernels/<path>.wgsl`, `/data/<dataset>/<split>.safetensors`,
 * `/runs/index.json` (the runs, newest first) and `/runs/<run>/<file>`; 404 for anything else.
 *
 * @example
 * ```ts ignore
 * Deno.serve(siteHandler({ web: "web", bundle: "app.js", kernels: "kernels", data: "data", runs: "runs" }));
 * ```
 */
export function siteHandler(site: SiteOptions): (request: Request) => Promise<Response> {
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    const parts = pathSegments(new URL(request.url).pathname);
    const file = parts && await route(site, parts);
    if (!file) return new Response("not found\n", { status: 404 });
    const headers = {
      "content-type": TYPES[extension(file)] ?? "application/octet-stream",
      "cache-control": "no-store",
    };
    if (typeof file !== "string") {
      return new Response(request.method === "HEAD" ? null : file.body, { headers });
    }
    const handle = await Deno.open(file);
    const { size } = await handle.stat();
    if (request.method === "HEAD") handle.close();
    return new Response(request.method === "HEAD" ? null : handle.readable, {
      headers: { ...headers, "content-length": String(size) },
    });
  };
}

/** A file to send: a path on disk, or a body made here (the runs index). */
type Served = string | { body: string; name: string };

function extension(file: Served): string {
  const name = typeof file === "string" ? file : file.name;
  return name.slice(name.lastIndexOf("."));
}

async function route(site: SiteOptions, parts: string[]): Promise<Served | null> {
  const [top, ...rest] = parts;
  if (parts.length === 0) return inside(site.web, ["index.html"]);
  if (top === "web" && rest.length === 1) {
    if (rest[0] === "app.js") return { body: site.bundle, name: "app.js" };
    return [".html", ".css", ".svg", ".png"].includes(extension(rest[0]))
      ? inside(site.web, rest)
      : null;
  }
  if (top === "kernels" && rest.length > 0 && rest.at(-1)!.endsWith(".wgsl")) {
    return inside(site.kernels, rest);
  }
  if (top === "data" && rest.length === 2 && DATA_FILES.has(rest[1])) {
    return inside(site.data, rest);
  }
  if (top === "runs" && rest.length === 1 && rest[0] === "index.json") {
    return { body: JSON.stringify(await listRuns(site.runs)), name: "index.json" };
  }
  if (top === "runs" && rest.length === 2 && RUN_FILES.has(rest[1])) {
    return inside(site.runs, rest);
  }
  return null;
}

/**
 * The decoded segments of a URL path, or null when one of them could step outside its
 * folder: `.`, `..`, empty (`//`), or holding a slash, backslash or NUL once decoded.
 */
export function pathSegments(pathname: string): string[] | null {
  const raw = pathname.split("/").slice(1);
  if (raw.length === 1 && raw[0] === "") return [];
  const parts: string[] = [];
  for (const segment of raw) {
    let part: string;
    try {
      part = decodeURIComponent(segment);
    } catch {
      return null;
    }
    if (part === "" || part === "." || part === ".." || /[/\\\0]/.test(part)) return null;
    parts.push(part);
  }
  return parts;
}

/** `root/parts...` when it is a file whose real path lies inside root's; else null. */
async function inside(root: string, parts: string[]): Promise<string | null> {
  try {
    const base = await Deno.realPath(root);
    const path = await Deno.realPath(join(base, ...parts));
    if (!path.startsWith(base + sep)) return null;
    return (await Deno.stat(path)).isFile ? path : null;
  } catch {
    return null;
  }
}

/** The folders of `root` that hold a model.safetensors, newest first, with their figures. */
export async function listRuns(root: string): Promise<RunSummary[]> {
  const found: (RunSummary & { mtime: number })[] = [];
  try {
    for await (const entry of Deno.readDir(root)) {
      const path = join(root, entry.name, "model.safetensors");
      if (!entry.isDirectory || !(await exists(path))) continue;
      try {
        const { metadata } = await readSafetensorsFile(path);
        const metrics = JSON.parse(metadata.metrics ?? "{}");
        const options = JSON.parse(metadata.options ?? "{}");
        found.push({
          name: entry.name,
          model: metadata.model ?? "lenet",
          epochs: metadata.epoch ? Number(metadata.epoch) : null,
          testAccuracy: typeof metrics.test_acc === "number" ? metrics.test_acc : null,
          dataset: options.dataset ?? "mnist",
          mtime: (await Deno.stat(path)).mtime?.getTime() ?? 0,
        });
      } catch (e) {
        console.error(`skipping ${path}: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return found.sort((a, b) => b.mtime - a.mtime).map(({ mtime: _, ...run }) => run);
}

/** web/main.ts and all it imports as one script for the browser (`deno bundle`). */
export async function bundlePage(): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", "web/main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`deno bundle web/main.ts failed:\n${new TextDecoder().decode(stderr)}`);
  }
  return new TextDecoder().decode(stdout);
}

const program = new Command()
  .name("deno task serve")
  .description(
    "Serve the page (web/): train a LeNet, load runs, draw digits and look inside the network, " +
      "in the browser, on WebGPU, with the same kernels as deno task train.",
  )
  .option("--port <n>", "port to listen on (0: any free port)", nonNegativeInt("--port"), 8000)
  .option("--host <name>", "address to bind (0.0.0.0 to serve other machines)", "127.0.0.1")
  .option(
    "--data <dir>",
    "folder of the data files (MNIST is downloaded there when missing)",
    "data",
  )
  .option("--runs <dir>", "folder of the run folders the page lists", "runs")
  .showHelpAfterError();

async function main(): Promise<void> {
  const options = program.parse(Deno.args, { from: "user" }).opts();
  const dir = join(options.data, "mnist");
  const present = await Promise.all([...DATA_FILES].map((f) => exists(join(dir, f))));
  if (!present.every(Boolean)) {
    console.log(`No MNIST data in ${dir}: downloading it first.`);
    await prepareDataset({ dataset: "mnist", out: options.data });
  }
  console.log("Bundling web/main.ts ...");
  const bundle = await bundlePage();
  const site: SiteOptions = {
    web: join(ROOT, "web"),
    bundle,
    kernels: join(ROOT, "kernels"),
    data: resolve(options.data),
    runs: resolve(options.runs),
  };
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: options.host,
      port: options.port,
      onListen: ({ hostname, port }) => {
        const host = hostname.includes(":") ? `[${hostname}]` : hostname;
        console.log(`Serving the page at http://${host}:${port}/ (Ctrl-C to stop)`);
        console.log(`  data: ${site.data}, runs: ${site.runs}`);
        if (!["127.0.0.1", "localhost", "::1"].includes(hostname)) {
          console.log(
            "  note: browsers give WebGPU to https and localhost pages only: from another " +
              "machine, forward the port (ssh -L) and open it as http://127.0.0.1:<port>/.",
          );
        }
      },
    }, siteHandler(site));
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `${options.host}:${options.port} is in use; pick another --port (0: any free one).`,
      );
    }
    throw e;
  }
  const stop = () => server.shutdown();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
