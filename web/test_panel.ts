/**
 * The test set's mistakes: the confusion matrix of all 10,000 test images and the first
 * misclassified digits, drawn by the chart code of evaluate's confusion.svg and errors.svg.
 * @module
 */

import type { App } from "./app.ts";
import { confusionSvg, digitsSvg, evaluate } from "./engine.ts";
import { setStatus } from "./status.ts";
import { IMAGE_PIXELS } from "../lib/data_gpu.ts";

const SHOWN = 30;

/** Wires the test-set panel. */
export function setupTestSet(app: App): void {
  const button = document.querySelector<HTMLButtonElement>("#evaluate")!;
  const summary = document.querySelector<HTMLElement>("#test-summary")!;
  const confusion = document.querySelector<HTMLElement>("#confusion")!;
  const errors = document.querySelector<HTMLElement>("#errors")!;
  app.onNet(() => {
    button.disabled = false;
    summary.textContent = "";
    confusion.replaceChildren();
    errors.replaceChildren();
  });
  button.addEventListener("click", async () => {
    const net = app.net;
    if (!net) return;
    button.disabled = true;
    setStatus("Classifying the 10,000 test images…");
    try {
      const t0 = performance.now();
      const { evaluation } = await evaluate(app.rt, net, app.test);
      if (app.net !== net) return;
      const { predictions, confusion: matrix } = evaluation;
      const wrong = [...predictions.keys()].filter((i) => predictions[i] !== app.test.labels[i]);
      summary.textContent = `Test loss ${evaluation.loss.toFixed(4)}, accuracy ` +
        `${evaluation.accuracy.toFixed(2)}%: ${wrong.length} of ${app.test.count} misclassified. ` +
        `Rows: the true digit; columns: the network's answer.`;
      confusion.innerHTML = confusionSvg(matrix, [..."0123456789"]);
      const shown = wrong.slice(0, SHOWN);
      const images = new Uint8Array(shown.length * IMAGE_PIXELS);
      shown.forEach((i, k) =>
        images.set(
          app.test.images.subarray(i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS),
          k * IMAGE_PIXELS,
        )
      );
      errors.innerHTML = shown.length === 0 ? "" : digitsSvg(
        images,
        shown.map((i) => app.test.labels[i]),
        {
          columns: 6,
          titles: shown.map((i) => `${app.test.labels[i]} → ${predictions[i]}`),
          scale: 2,
        },
      );
      setStatus(`Evaluated in ${((performance.now() - t0) / 1000).toFixed(1)} s.`);
    } catch (e) {
      setStatus(`Evaluation failed: ${(e as Error).message}`);
    } finally {
      button.disabled = false;
    }
  });
}
