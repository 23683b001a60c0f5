/**
 * The t-SNE map of the first 1,000 test images: their logits, embedded on the GPU by
 * lib/tsne, drawn by the chart code of tsne.svg; hovering a point shows its digit. The
 * panel also shows the model's accuracy on those 1,000 images as soon as a model loads.
 * @module
 */

import type { App } from "./app.ts";
import { embed, evaluate, firstImages, type Net, scatterSvg } from "./engine.ts";
import { digitCanvas } from "./maps.ts";
import { setStatus } from "./status.ts";
import { IMAGE_PIXELS } from "../lib/data_gpu.ts";

const COUNT = 1000;

/** Wires the t-SNE panel. */
export function setupTsne(app: App): void {
  const button = document.querySelector<HTMLButtonElement>("#tsne-run")!;
  const box = document.querySelector<HTMLElement>("#tsne")!;
  const accuracy = document.querySelector<HTMLElement>("#sample-accuracy")!;
  const sample = firstImages(app.test, COUNT);
  let current: { net: Net; logits: Float32Array; predictions: Uint8Array } | null = null;

  app.onNet(async (net) => {
    current = null;
    button.disabled = true;
    box.replaceChildren();
    accuracy.textContent = `Classifying the first ${sample.count} test images…`;
    const { logits, evaluation } = await evaluate(app.rt, net, sample);
    if (app.net !== net) return; // another model came meanwhile
    current = { net, logits, predictions: evaluation.predictions };
    const correct = Math.round((evaluation.accuracy * sample.count) / 100);
    accuracy.textContent = `Accuracy on these ${sample.count} images: ` +
      `${evaluation.accuracy.toFixed(2)}% (${correct} correct).`;
    accuracy.dataset.correct = String(correct);
    accuracy.dataset.accuracy = String(evaluation.accuracy);
    button.disabled = false;
  });

  button.addEventListener("click", async () => {
    if (!current) return;
    const { net, logits, predictions } = current;
    button.disabled = true;
    box.classList.add("busy");
    try {
      const t0 = performance.now();
      const points = await embed(app.rt, logits, {
        n: sample.count,
        dim: 10,
        onProgress: (it) => setStatus(`t-SNE: iteration ${it} of 300…`),
      });
      if (app.net !== net) return;
      box.innerHTML = scatterSvg(points, sample.labels, { title: "t-SNE of the logits" });
      setStatus(
        `t-SNE of ${sample.count} test images in ` +
          `${((performance.now() - t0) / 1000).toFixed(1)} s.`,
      );
      hoverDigits(box, app, predictions);
    } catch (e) {
      setStatus(`t-SNE failed: ${(e as Error).message}`);
    } finally {
      box.classList.remove("busy");
      button.disabled = false;
    }
  });
}

/** Shows the digit of the point nearest the pointer (within 8 pixels), beside it. */
function hoverDigits(box: HTMLElement, app: App, predictions: Uint8Array): void {
  const svg = box.querySelector("svg")!;
  const circles = [...svg.querySelectorAll<SVGCircleElement>("circle.point")];
  const xs = circles.map((c) => Number(c.getAttribute("cx")));
  const ys = circles.map((c) => Number(c.getAttribute("cy")));
  const tip = document.createElement("div");
  tip.className = "tip";
  tip.hidden = true;
  box.append(tip);
  let shown = -1;
  const show = (i: number) => {
    if (i === shown) return;
    circles[shown]?.setAttribute("r", "2.5");
    shown = i;
    tip.hidden = i < 0;
    if (i < 0) return;
    circles[i].setAttribute("r", "5");
    const label = app.test.labels[i];
    tip.replaceChildren(
      digitCanvas(app.test.images.subarray(i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS), {
        max: 255,
        scale: 3,
      }),
      Object.assign(document.createElement("p"), {
        textContent: `test image ${i}: a ${label}, predicted ${predictions[i]}`,
      }),
    );
    const r = circles[i].getBoundingClientRect(), b = box.getBoundingClientRect();
    tip.style.left = `${r.right - b.left + box.scrollLeft + 8}px`;
    tip.style.top = `${r.top - b.top - 20}px`;
  };
  svg.addEventListener("mousemove", (e) => {
    // The svg's user units are its pixels (viewBox = width x height).
    const rect = svg.getBoundingClientRect();
    const x = e.clientX - rect.left, y = e.clientY - rect.top;
    let best = -1, bestDistance = 64;
    for (let i = 0; i < xs.length; i++) {
      const d = (xs[i] - x) ** 2 + (ys[i] - y) ** 2;
      if (d < bestDistance) [best, bestDistance] = [i, d];
    }
    show(best);
  });
  svg.addEventListener("mouseleave", () => show(-1));
}
