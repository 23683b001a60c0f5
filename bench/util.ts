/**
 * GPU benchmarks on top of Deno.bench: each iteration records an op list `repeat` times in
 * one pass, submits once and waits, so one figure is the time of one call with the dispatch
 * cost included. Besides Deno's table, a table with GFLOP/s (or GB/s) per entry is printed
 * when the bench process ends.
 * @module
 */

import { idle, type Op, type Runtime, submit } from "../lib/runtime.ts";

/** What one call of the benchmarked ops does, for the throughput column. */
export interface Work {
  /** Floating-point operations of one call (a multiply-add is 2). */
  flops?: number;
  /** Bytes read and written by one call, for memory-bound kernels. */
  bytes?: number;
  /** Images processed by one call, for whole steps. */
  images?: number;
}

interface Row extends Work {
  name: string;
  seconds: number;
  calls: number;
}

const rows: Row[] = [];

/**
 * Registers a Deno.bench that times `ops` (recorded `repeat` times per submit).
 * `makeOps` runs once, on the first iteration, so that setup is not timed.
 */
export function gpuBench(
  name: string,
  rtPromise: Promise<Runtime>,
  makeOps: (rt: Runtime) => Promise<{ ops: Op[]; work: Work }>,
  options: { repeat?: number; group?: string } = {},
): void {
  const repeat = options.repeat ?? 20;
  let prepared: Promise<{ rt: Runtime; ops: Op[]; row: Row }> | undefined;
  Deno.bench({ name, group: options.group, permissions: "inherit" }, async (b) => {
    prepared ??= (async () => {
      const rt = await rtPromise;
      const { ops, work } = await makeOps(rt);
      // Warm up: the first submit of a pipeline pays for its compilation.
      submit(rt, ops, 2);
      await idle(rt);
      const row: Row = { name, seconds: 0, calls: 0, ...work };
      rows.push(row);
      return { rt, ops, row };
    })();
    const { rt, ops, row } = await prepared;
    b.start();
    const t0 = performance.now();
    submit(rt, ops, repeat);
    await idle(rt);
    const t1 = performance.now();
    b.end();
    row.seconds += (t1 - t0) / 1000;
    row.calls += repeat;
  });
}

/** Formats the collected rows as a table (also used by scripts that print profiles). */
export function throughputTable(): string {
  const lines = [
    "| kernel | time per call | GFLOP/s | GB/s | images/s |",
    "|---|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const t = r.seconds / Math.max(1, r.calls);
    const fmt = (v: number | undefined, d: number) => v === undefined ? "" : (v / t / d).toFixed(2);
    lines.push(
      `| ${r.name} | ${(t * 1e6).toFixed(1)} us | ${fmt(r.flops, 1e9)} | ${fmt(r.bytes, 1e9)} | ${
        r.images === undefined ? "" : (r.images / t).toFixed(0)
      } |`,
    );
  }
  return lines.join("\n");
}

globalThis.addEventListener("unload", () => {
  if (rows.length > 0) console.log(`\n${throughputTable()}`);
});
