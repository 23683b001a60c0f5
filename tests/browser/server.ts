/**
 * Test helpers: `deno task serve` started on a free port (its URL read from what it prints)
 * and stopped again.
 * @module
 */

import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A running server. */
export interface Server {
  url: string;
  stop(): Promise<void>;
}

/** Starts scripts/serve.ts on a free port of 127.0.0.1 with `--runs runs` and the repo's data. */
export async function startServer(options: { runs: string }): Promise<Server> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write=data",
      "--allow-net",
      "--allow-env",
      "--allow-run",
      "scripts/serve.ts",
      "--port",
      "0",
      "--runs",
      options.runs,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/http:\/\/\S+\//.test(text)) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`serve exited before printing its URL:\n${text}`);
    text += value;
  }
  const url = text.match(/http:\/\/\S+\//)![0];
  // Keep reading so the server never blocks on a full pipe.
  (async () => {
    while (!(await lines.read()).done) { /* drop */ }
  })();
  return {
    url,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** The status code of a raw GET of `path`, sent as is (no URL normalization on our side). */
export async function rawStatus(url: string, path: string): Promise<number> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const buffer = new Uint8Array(256);
    const n = await conn.read(buffer);
    const line = new TextDecoder().decode(buffer.subarray(0, n ?? 0)).split("\r\n")[0];
    return Number(line.split(" ")[1]);
  } finally {
    conn.close();
  }
}
