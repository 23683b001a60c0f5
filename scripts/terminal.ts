/**
 * The terminal, for the scripts: progress bars on stderr (tqdm's place) that every exit path
 * stops, so the cursor and line wrapping come back and the last message starts on its own
 * line; Ctrl-C and SIGTERM handled alike; one way to end with an error.
 * @module
 */

import cliProgress from "cli-progress";
import process from "node:process";

const active = new Set<cliProgress.SingleBar>();

/** A running progress bar; `stop` ends its line (and is safe to call twice). */
export interface Bar {
  update(done: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

/**
 * Starts a progress bar of `total` steps on stderr. `format` may name payload fields as
 * `{field}` besides cli-progress's own (`{bar}`, `{value}`, `{total}`, `{eta_formatted}`).
 *
 * @example
 * ```ts ignore
 * const bar = progressBar("t-SNE {bar} {value}/{total}", 300, {});
 * bar.update(10);
 * bar.stop();
 * ```
 */
export function progressBar(
  format: string,
  total: number,
  payload: Record<string, string | number>,
): Bar {
  const bar = new cliProgress.SingleBar({
    format,
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    barsize: 24,
    hideCursor: true,
    // Our own handlers stop the bars on SIGINT and SIGTERM.
    gracefulExit: false,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, 0, payload);
  active.add(bar);
  return {
    update: (done, values) => bar.update(done, values),
    stop: () => {
      if (active.delete(bar)) bar.stop();
    },
  };
}

/** Stops every running bar: shows the cursor, turns line wrap back on, ends the bar's line. */
export function stopBars(): void {
  for (const bar of active) bar.stop();
  active.clear();
}

type Signal = "SIGINT" | "SIGTERM";
const handlers: ((signal: Signal) => void)[] = [];
let listeners: [Signal, () => void][] = [];

/**
 * Listens to Ctrl-C (SIGINT) and SIGTERM: stops the bars, then calls the newest handler of
 * {@linkcode onInterrupt}, or without one says so and exits 130 (the shell's code for it).
 */
function listen(): void {
  if (listeners.length > 0) return;
  listeners = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const listener = () => {
      stopBars();
      const handler = handlers.at(-1);
      if (handler) return handler(signal);
      console.error(`${signal === "SIGINT" ? "Ctrl-C" : "SIGTERM"}: stopped.`);
      Deno.exit(130);
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener];
  });
}

function unlisten(): void {
  for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  listeners = [];
}

/**
 * Calls `handler` on Ctrl-C (SIGINT) and on SIGTERM instead of exiting, after stopping the
 * bars so that what it prints starts on a line of its own. Returns the function that removes it.
 */
export function onInterrupt(handler: (signal: Signal) => void): () => void {
  listen();
  handlers.push(handler);
  return () => {
    const i = handlers.lastIndexOf(handler);
    if (i >= 0) handlers.splice(i, 1);
  };
}

/** Stops the bars, prints `error: <message>` on a line of its own and exits with `code`. */
export function fail(message: string, code = 1): never {
  stopBars();
  console.error(`error: ${message}`);
  Deno.exit(code);
}

/**
 * Runs a script's `main`: Ctrl-C and SIGTERM stop the bars before the script ends, and any
 * error ends it through {@linkcode fail} (one line, no stack trace).
 */
export async function runMain(main: () => Promise<void>): Promise<void> {
  listen();
  try {
    await main();
  } catch (e) {
    fail((e as Error).message);
  } finally {
    stopBars();
    unlisten();
  }
}
