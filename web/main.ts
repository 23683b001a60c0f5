/// <reference lib="dom" />
/**
 * The page's entry point (bundled by `deno task serve`): checks WebGPU, starts the device,
 * fetches the test set, then hands the app to each panel.
 * @module
 */

import { describeAdapter, startRuntime } from "./engine.ts";
import { createApp } from "./app.ts";
import { missingWebGpu, setStatus, showProblem } from "./status.ts";
import { setupTraining } from "./train_panel.ts";
import { setupRuns } from "./runs_panel.ts";
import { setupDrawing } from "./draw_panel.ts";
import { setupInside } from "./inside_panel.ts";
import { setupTsne } from "./tsne_panel.ts";
import { setupTestSet } from "./test_panel.ts";

async function main(): Promise<void> {
  const problem = await missingWebGpu();
  if (problem) return showProblem(problem);
  let rt;
  try {
    rt = await startRuntime(new URLSearchParams(location.search).get("kernels"));
  } catch (e) {
    return showProblem({
      what: "WebGPU could not start a device.",
      how: ["See chrome://gpu, or try another browser (Chrome or Edge 113+)."],
    }, (e as Error).message);
  }
  const app = await createApp(rt);
  document.querySelector<HTMLElement>("#app")!.hidden = false;
  const inside = setupInside(app);
  setupTraining(app);
  setupDrawing(app, inside);
  setupTsne(app);
  setupTestSet(app);
  setStatus(`${describeAdapter(rt)}. Ready: train a model or load one.`);
  await setupRuns(app);
}

main().catch((e) => {
  console.error(e);
  setStatus(`error: ${(e as Error).message}`);
});
