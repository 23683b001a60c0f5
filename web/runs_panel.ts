/**
 * Loading a model: the runs the server lists (a click, or `?run=<name>` in the URL), or a
 * model.safetensors dropped on the page; a file that is not one of our checkpoints gets a
 * message that says what is wrong.
 * @module
 */

import type { App } from "./app.ts";
import { readCheckpoint } from "./engine.ts";
import { setStatus } from "./status.ts";

/** A row of /runs/index.json (scripts/serve.ts's RunSummary). */
interface RunSummary {
  name: string;
  model: string;
  epochs: number | null;
  testAccuracy: number | null;
  dataset: string;
}

/** Lists the runs, wires the drop zone, and loads `?run=` when the URL names one. */
export async function setupRuns(app: App): Promise<void> {
  const info = document.querySelector<HTMLElement>("#model-info")!;
  app.onNet((net) => {
    const epoch = net.metadata.epoch ? `, ${net.metadata.epoch} epoch(s)` : "";
    info.textContent = `Current model: ${net.model.name} (${net.source}${epoch}, ` +
      `${net.steps} steps).`;
  });
  setupDrop(app);
  const runs = await listRuns();
  showRuns(app, runs);
  const wanted = new URL(location.href).searchParams.get("run");
  if (wanted) await loadRun(app, wanted);
}

async function listRuns(): Promise<RunSummary[] | string> {
  try {
    const response = await fetch("/runs/index.json");
    if (!response.ok) return `The list of runs did not load (HTTP ${response.status}).`;
    return await response.json();
  } catch (e) {
    return `The list of runs did not load: ${(e as Error).message}`;
  }
}

function showRuns(app: App, runs: RunSummary[] | string): void {
  const table = document.querySelector<HTMLTableElement>("#runs")!;
  const body = table.tBodies[0];
  body.replaceChildren();
  if (typeof runs === "string" || runs.length === 0) {
    body.insertRow().insertCell().textContent = typeof runs === "string"
      ? runs
      : "No runs yet: deno task train writes them to runs/.";
    return;
  }
  table.createTHead().innerHTML =
    "<tr><th>Run</th><th>Model</th><th>Epochs</th><th>Test accuracy</th></tr>";
  for (const run of runs) {
    const row = body.insertRow();
    row.className = "run";
    row.tabIndex = 0;
    row.dataset.run = run.name;
    for (
      const text of [
        run.name,
        run.model,
        String(run.epochs ?? "?"),
        run.testAccuracy === null ? "?" : `${run.testAccuracy.toFixed(2)}%`,
      ]
    ) row.insertCell().textContent = text;
    const load = () => {
      history.replaceState(null, "", `?run=${encodeURIComponent(run.name)}`);
      loadRun(app, run.name);
    };
    row.addEventListener("click", load);
    row.addEventListener("keydown", (e) => e.key === "Enter" && load());
  }
}

/** Fetches runs/<name>/model.safetensors and makes it the current model. */
async function loadRun(app: App, name: string): Promise<void> {
  const url = `/runs/${encodeURIComponent(name)}/model.safetensors`;
  setStatus(`Loading run ${name}…`);
  try {
    const response = await fetch(url);
    if (!response.ok) {
      throw new Error(
        response.status === 404
          ? `run "${name}" has no model.safetensors on this server`
          : `${url}: HTTP ${response.status}`,
      );
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    app.setNet(readCheckpoint(bytes, `runs/${name}/model.safetensors`, `run ${name}`));
    document.querySelectorAll<HTMLElement>("#runs tr.run").forEach((row) =>
      row.classList.toggle("selected", row.dataset.run === name)
    );
    setStatus(`Loaded run ${name}. Draw a digit, or look inside.`);
  } catch (e) {
    setStatus(`Could not load run ${name}: ${(e as Error).message}`);
  }
}

function setupDrop(app: App): void {
  const zone = document.querySelector<HTMLElement>("#drop")!;
  const input = document.querySelector<HTMLInputElement>("#file")!;
  const message = document.querySelector<HTMLElement>("#drop-message")!;
  const take = async (file: File | undefined) => {
    if (!file) return;
    message.hidden = true;
    try {
      if (!file.name.endsWith(".safetensors")) {
        throw new Error(
          `${file.name} is not a .safetensors file: drop the model.safetensors of a run.`,
        );
      }
      const bytes = new Uint8Array(await file.arrayBuffer());
      app.setNet(readCheckpoint(bytes, file.name));
      setStatus(`Loaded ${file.name}.`);
    } catch (e) {
      message.textContent = (e as Error).message;
      message.hidden = false;
    }
  };
  // The whole page takes the drop: the browser would otherwise open the file.
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  document.addEventListener("dragleave", () => zone.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    take(e.dataTransfer?.files[0]);
  });
  input.addEventListener("change", () => take(input.files?.[0]));
}
