/**
 * Training in the page: the form (model, epochs, batch size, learning rate, images), the
 * Train / Pause / Stop / Download buttons, live progress and curves, and a row per epoch.
 * @module
 */

import type { App } from "./app.ts";
import {
  checkpointBytes,
  MODEL_CHOICES,
  type Net,
  type PassResult,
  train,
  type TrainProgress,
  type TrainSettings,
} from "./engine.ts";
import { type Curves, drawCurves, emptyCurves } from "./live_chart.ts";
import { setStatus } from "./status.ts";

type State = "idle" | "run" | "pause" | "stop";

/** Wires the training panel. */
export function setupTraining(app: App): void {
  const form = document.querySelector<HTMLFormElement>("#train-form")!;
  const select = form.elements.namedItem("model") as HTMLSelectElement;
  for (const { name, label } of MODEL_CHOICES) select.add(new Option(label, name));
  const buttons = {
    train: document.querySelector<HTMLButtonElement>("#train")!,
    pause: document.querySelector<HTMLButtonElement>("#pause")!,
    stop: document.querySelector<HTMLButtonElement>("#stop")!,
    download: document.querySelector<HTMLButtonElement>("#download")!,
  };
  const progress = document.querySelector<HTMLElement>("#progress")!;
  const curvesBox = document.querySelector<HTMLElement>("#curves")!;
  let state: State = "idle";
  let resume: ((go: "run" | "stop") => void) | undefined;
  let trained: Net | null = null;

  const setState = (next: State) => {
    state = next;
    buttons.train.disabled = next !== "idle";
    buttons.pause.disabled = next === "idle" || next === "stop";
    buttons.pause.textContent = next === "pause" ? "Resume" : "Pause";
    buttons.stop.disabled = next === "idle" || next === "stop";
    buttons.download.disabled = next !== "idle" || !trained;
    form.querySelectorAll("input, select").forEach((e) =>
      (e as HTMLInputElement).disabled = next !== "idle"
    );
  };

  buttons.pause.addEventListener("click", () => {
    if (state === "run") {
      setState("pause");
      setStatus("Pausing after the steps in flight…");
    } else if (state === "pause") {
      setState("run");
      setStatus("Training again, from the start of the paused epoch…");
      resume?.("run");
    }
  });
  buttons.stop.addEventListener("click", () => {
    const waiting = state === "pause";
    setState("stop");
    setStatus("Stopping after the steps in flight…");
    if (waiting) resume?.("stop");
  });
  buttons.download.addEventListener("click", () => {
    if (trained) saveFile(checkpointBytes(trained), "model.safetensors");
  });

  buttons.train.addEventListener("click", async () => {
    const settings = readSettings(form);
    if (typeof settings === "string") return setStatus(settings);
    setState("run");
    const curves = emptyCurves();
    const table = document.querySelector<HTMLTableElement>("#epochs")!;
    table.tBodies[0].replaceChildren();
    table.hidden = true;
    for (const key of ["firstLoss", "lastLoss", "points"]) delete progress.dataset[key];
    drawCurves(curvesBox, curves, settings.epochs);
    try {
      setStatus("Fetching the MNIST training set (47 MB)…");
      const data = { train: await app.train(), test: app.test, normalization: app.normalization };
      setStatus(`Training ${settings.model} on ${settings.images} images…`);
      const follow = follower(progress, curvesBox, curves, settings);
      trained = await train(app.rt, data, settings, {
        onProgress: follow.progress,
        onEpoch(epoch, result, test) {
          follow.epoch(epoch, result, test);
          addEpochRow(table, epoch, result, test);
        },
        control: () => state === "idle" ? "stop" : state,
        waitWhilePaused(net) {
          app.setNet(net);
          setStatus(
            "Paused: the model so far is loaded below (draw a digit). Resume restarts " +
              "the interrupted epoch.",
          );
          return new Promise((resolve) => resume = resolve);
        },
      });
      const epochs = Number(trained.metadata.epoch);
      setStatus(
        `${epochs < settings.epochs ? "Stopped" : "Trained"} ${settings.model}: ` +
          `${epochs} of ${settings.epochs} epoch(s) done, ${trained.steps} steps.`,
      );
      app.setNet(trained);
    } catch (e) {
      console.error(e);
      setStatus(`Training failed: ${(e as Error).message}`);
    } finally {
      setState("idle");
    }
  });
  setState("idle");
}

/** The form's values, or a message naming the field that is wrong. */
function readSettings(form: HTMLFormElement): TrainSettings | string {
  const value = (name: string) => Number((form.elements.namedItem(name) as HTMLInputElement).value);
  const model = (form.elements.namedItem("model") as HTMLSelectElement).value;
  const settings = {
    model,
    epochs: value("epochs"),
    batchSize: value("batchSize"),
    lr: value("lr"),
    images: value("images"),
  };
  const whole = (n: number, lo: number, hi: number) => Number.isInteger(n) && n >= lo && n <= hi;
  if (!whole(settings.epochs, 1, 50)) return "Epochs must be a whole number from 1 to 50.";
  if (!whole(settings.batchSize, 1, 1024)) {
    return "Batch size must be a whole number from 1 to 1024.";
  }
  if (!(settings.lr > 0 && settings.lr <= 1)) return "Learning rate must lie in (0, 1].";
  if (!whole(settings.images, settings.batchSize, 60000)) {
    return `Training images must be a whole number from the batch size to 60000.`;
  }
  return settings;
}

/** Turns progress readouts into the progress line and curve points. */
function follower(
  progress: HTMLElement,
  curvesBox: HTMLElement,
  curves: Curves,
  settings: TrainSettings,
) {
  const fill = progress.querySelector<HTMLElement>(".fill")!;
  const figures = progress.querySelector<HTMLElement>(".figures")!;
  let last = { done: 0, loss: 0, correct: 0, images: 0 };
  let passStart = performance.now(), lastEpoch = 0;
  const rate = { images: 0, seconds: 0 };
  return {
    progress(p: TrainProgress) {
      if (p.epoch !== lastEpoch || p.done < last.done) {
        // A new pass (the next epoch, or the paused one again): new baselines.
        last = { done: 0, loss: 0, correct: 0, images: 0 };
        passStart = performance.now();
        lastEpoch = p.epoch;
      }
      const correct = (p.accuracy / 100) * p.images;
      if (p.done > last.done) {
        // Means over the batches since the last readout, from the running means.
        const loss = (p.loss * p.done - last.loss * last.done) / (p.done - last.done);
        const accuracy = (100 * (correct - last.correct)) / (p.images - last.images);
        const x = p.epoch - 1 + p.done / p.total;
        curves.trainLoss.push({ x, y: loss });
        progress.dataset.firstLoss ??= String(loss);
        progress.dataset.lastLoss = String(loss);
        progress.dataset.points = String(curves.trainLoss.length);
        curves.trainAccuracy.push({ x, y: accuracy });
        drawCurves(curvesBox, curves, settings.epochs);
      }
      last = { done: p.done, loss: p.loss, correct, images: p.images };
      const seconds = (performance.now() - passStart) / 1000;
      const perSecond = (rate.images + p.images) / Math.max(1e-3, rate.seconds + seconds);
      const left = ((settings.epochs - p.epoch) * settings.images + settings.images - p.images) /
        perSecond;
      fill.style.width = `${(100 * (p.epoch - 1 + p.done / p.total)) / settings.epochs}%`;
      figures.textContent = `Epoch ${p.epoch}/${settings.epochs} · batch ${p.done}/${p.total} · ` +
        `${Math.round(perSecond)} images/s · about ${formatSeconds(left)} left · ` +
        `loss ${p.loss.toFixed(4)} · accuracy ${p.accuracy.toFixed(2)}%`;
      progress.dataset.loss = String(p.loss);
      progress.dataset.steps = String(p.done);
      progress.dataset.imagesPerSecond = String(Math.round(perSecond));
    },
    epoch(epoch: number, result: PassResult, test: PassResult) {
      rate.images += result.images;
      rate.seconds += result.seconds;
      curves.testLoss.push({ x: epoch, y: test.loss });
      curves.testAccuracy.push({ x: epoch, y: test.accuracy });
      drawCurves(curvesBox, curves, settings.epochs);
    },
  };
}

function addEpochRow(table: HTMLTableElement, epoch: number, tr: PassResult, te: PassResult) {
  const row = table.tBodies[0].insertRow();
  for (
    const text of [
      String(epoch),
      tr.loss.toFixed(4),
      `${tr.accuracy.toFixed(2)}%`,
      te.loss.toFixed(4),
      `${te.accuracy.toFixed(2)}%`,
      String(Math.round(tr.images / tr.seconds)),
    ]
  ) row.insertCell().textContent = text;
  table.hidden = false;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

/** Offers `bytes` as a download named `name`. */
export function saveFile(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>]));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
