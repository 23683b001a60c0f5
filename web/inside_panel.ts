/**
 * Looking inside: the first convolution's learned filters, and the output of every
 * convolution for the digit being drawn.
 * @module
 */

import type { App } from "./app.ts";
import { type FeatureMap, firstFilters, layerRows, type Net } from "./engine.ts";
import { mapCanvas } from "./maps.ts";

/** Wires the panel; the drawing panel hands it the feature maps of each stroke. */
export function setupInside(app: App): { showMaps(maps: FeatureMap[] | null): void } {
  const filters = document.querySelector<HTMLElement>("#filters")!;
  const box = document.querySelector<HTMLElement>("#feature-maps")!;
  app.onNet((net) => {
    showLayers(net);
    const { shape, values } = firstFilters(net);
    const [out, inputs, kh, kw] = shape;
    const limit = Math.max(...values.map(Math.abs));
    filters.replaceChildren(
      ...Array.from({ length: out }, (_, k) => {
        const figure = document.createElement("figure");
        const kernel = values.subarray(k * inputs * kh * kw, k * inputs * kh * kw + kh * kw);
        figure.append(mapCanvas(kernel, { width: kw, height: kh, scale: 48 / kw, limit }));
        figure.append(caption(`filter ${k}`));
        return figure;
      }),
    );
    box.replaceChildren(note("Draw a digit to see them."));
  });
  return {
    showMaps(maps) {
      if (!maps) return box.replaceChildren(note("Draw a digit to see them."));
      box.replaceChildren(
        ...maps.filter((m) => m.shape[1] * m.shape[2] > 1).map((m) => {
          const [channels, height, width] = m.shape;
          const section = document.createElement("div");
          section.className = "layer-maps";
          const title = document.createElement("h4");
          title.textContent = `${m.name} (${m.type}): ${channels} maps of ${height}x${width}`;
          const grid = document.createElement("div");
          grid.className = "maps";
          const scale = Math.max(2, Math.floor(64 / width));
          for (let c = 0; c < channels; c++) {
            const plane = m.values.subarray(c * height * width, (c + 1) * height * width);
            grid.append(mapCanvas(plane, { width, height, scale }));
          }
          section.append(title, grid);
          return section;
        }),
      );
    },
  };
}

/** One row a layer, and the total of trainable parameters. */
function showLayers(net: Net): void {
  const table = document.querySelector<HTMLTableElement>("#layers")!;
  table.createTHead().innerHTML =
    "<tr><th>Layer</th><th>Type</th><th>Output shape</th><th>Parameters</th></tr>";
  const body = table.tBodies[0];
  body.replaceChildren();
  const rows = layerRows(net);
  const total = rows.reduce((a, r) => a + r.params, 0);
  const line = (cells: string[]) => {
    const tr = body.insertRow();
    for (const text of cells) tr.insertCell().textContent = text;
    return tr;
  };
  for (const r of rows) line([r.name, r.type, r.shape, r.params.toLocaleString("en-US")]);
  line(["Total", "", "", total.toLocaleString("en-US")]).className = "total";
}

function caption(text: string): HTMLElement {
  const c = document.createElement("figcaption");
  c.textContent = text;
  return c;
}

function note(text: string): HTMLElement {
  const p = document.createElement("p");
  p.className = "caption";
  p.textContent = text;
  return p;
}
