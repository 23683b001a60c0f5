/**
 * Drawing a digit: a canvas for the mouse, a pen or a finger (pointer events), the 28x28
 * input beside it, the predicted digit and the ten class probabilities as bars, updated while
 * the stroke goes on; a Clear button.
 * @module
 */

import type { App } from "./app.ts";
import { createInspector, type FeatureMap, type Inspector } from "./engine.ts";
import { mnistInput, SIDE } from "./preprocess.ts";

/** Whoever shows the feature maps of the drawn digit. */
export interface MapsView {
  showMaps(maps: FeatureMap[] | null): void;
}

/** Wires the drawing panel; predictions start once there is a model. */
export function setupDrawing(app: App, view: MapsView): void {
  const canvas = document.querySelector<HTMLCanvasElement>("#draw")!;
  const small = document.querySelector<HTMLCanvasElement>("#input28")!;
  const prediction = document.querySelector<HTMLElement>("#prediction")!;
  const bars = makeBars(document.querySelector<HTMLElement>("#probabilities")!);
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  let inspector: Promise<Inspector> | null = null;
  let busy = false, again = false;

  const clear = () => {
    ctx.fillStyle = "black";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    small.getContext("2d")!.clearRect(0, 0, SIDE, SIDE);
    prediction.textContent = "–";
    bars.set(null);
    view.showMaps(null);
  };
  // One forward pass at a time; strokes that come meanwhile make one more pass after it.
  const predict = async () => {
    if (busy) return void (again = true);
    busy = true;
    try {
      do {
        again = false;
        const pixels = inputPixels(ctx, canvas);
        showInput(small, pixels);
        if (!inspector || !pixels.some((v) => v > 0)) continue;
        const { probabilities, maps } = await (await inspector).run(pixels);
        const best = probabilities.indexOf(Math.max(...probabilities));
        prediction.textContent = String(best);
        bars.set(probabilities);
        view.showMaps(maps);
      } while (again);
    } finally {
      busy = false;
    }
  };

  app.onNet((net) => {
    document.querySelector<HTMLElement>("#draw-hint")!.hidden = true;
    const previous = inspector;
    inspector = createInspector(app.rt, net);
    previous?.then((p) => p.destroy());
    predict();
  });

  let last: { x: number; y: number } | null = null;
  const point = (e: PointerEvent) => {
    const r = canvas.getBoundingClientRect();
    return {
      x: ((e.clientX - r.left) * canvas.width) / r.width,
      y: ((e.clientY - r.top) * canvas.height) / r.height,
    };
  };
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    last = point(e);
    stroke(ctx, last, last);
    predict();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    const next = point(e);
    stroke(ctx, last, next);
    last = next;
    predict();
  });
  const end = () => {
    if (last) predict();
    last = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  document.querySelector("#clear")!.addEventListener("click", clear);
  clear();
}

/** A white round stroke about as wide, relative to the digit, as MNIST's pen. */
function stroke(
  ctx: CanvasRenderingContext2D,
  from: { x: number; y: number },
  to: { x: number; y: number },
): void {
  ctx.strokeStyle = "white";
  ctx.lineWidth = 20;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.fillStyle = "white";
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
  // A dot where the stroke ends: a tap draws one (a zero-length line draws nothing).
  ctx.beginPath();
  ctx.arc(to.x, to.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
}

/** The canvas's ink (its red channel) as MNIST's 28x28 input in [0, 1]. */
function inputPixels(ctx: CanvasRenderingContext2D, canvas: HTMLCanvasElement): Float32Array {
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const ink = new Float32Array(canvas.width * canvas.height);
  for (let i = 0; i < ink.length; i++) ink[i] = data[4 * i] / 255;
  return mnistInput(ink, canvas);
}

function showInput(canvas: HTMLCanvasElement, pixels: Float32Array): void {
  const ctx = canvas.getContext("2d")!;
  const image = ctx.createImageData(SIDE, SIDE);
  pixels.forEach((v, i) => {
    image.data.set([255 * v, 255 * v, 255 * v, 255], 4 * i);
  });
  ctx.putImageData(image, 0, 0);
}

/** Ten labelled bars; `set(null)` empties them. */
function makeBars(box: HTMLElement): { set(p: Float32Array | null): void } {
  const rows = Array.from({ length: 10 }, (_, digit) => {
    const row = document.createElement("div");
    row.className = "prob";
    row.dataset.digit = String(digit);
    row.innerHTML = `<span class="digit">${digit}</span><span class="track"><span class="fill">` +
      `</span></span><span class="value"></span>`;
    box.append(row);
    return row;
  });
  return {
    set(p) {
      const best = p ? p.indexOf(Math.max(...p)) : -1;
      rows.forEach((row, digit) => {
        const v = p ? p[digit] : 0;
        row.querySelector<HTMLElement>(".fill")!.style.width = `${100 * v}%`;
        row.querySelector<HTMLElement>(".value")!.textContent = p ? `${(100 * v).toFixed(1)}%` : "";
        row.dataset.probability = String(v);
        row.classList.toggle("best", digit === best);
      });
    },
  };
}
