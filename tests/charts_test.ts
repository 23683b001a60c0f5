import assert from "node:assert/strict";
import { XMLValidator } from "fast-xml-parser";
import { parseHTML } from "linkedom";
import { confusionSvg, digitsSvg, lineChartsSvg, scatterSvg } from "../lib/io/charts.ts";

/** Asserts well-formed SVG without NaN and returns how many elements match each selector. */
function check(svg: string, selectors: string[]): number[] {
  const valid = XMLValidator.validate(svg);
  assert.equal(valid, true, JSON.stringify(valid));
  assert.match(svg, /^<svg[^>]* xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.doesNotMatch(svg, /NaN|undefined/);
  const { document } = parseHTML(`<html><body>${svg}</body></html>`) as unknown as {
    document: { querySelectorAll(selector: string): { length: number } };
  };
  return selectors.map((s) => document.querySelectorAll(s).length);
}

/** A blob in the middle of each 28x28 image, with a gradient. */
function fakeDigits(count: number): Uint8Array {
  const pixels = new Uint8Array(count * 784);
  for (let i = 0; i < pixels.length; i++) {
    const x = i % 28, y = Math.floor(i / 28) % 28;
    if (Math.abs(x - 14) < 6 && Math.abs(y - 14) < 9) pixels[i] = (x * 9 + y * 3) % 256;
  }
  return pixels;
}

Deno.test("digitsSvg draws one titled image per digit, a path per gray level at most", () => {
  const svg = digitsSvg(fakeDigits(12), [7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6], { count: 10 });
  const [digits, titles, paths] = check(svg, ["g.digit", "text", "path"]);
  assert.equal(digits, 10);
  assert.equal(titles, 10);
  assert.ok(paths > 0 && paths <= 10 * 15, `${paths} paths`);
  assert.match(svg, />Digit: 7</);
  assert.ok(svg.length < 60_000, `${svg.length} bytes`);
});

Deno.test("digitsSvg escapes titles and wraps to several rows", () => {
  const svg = digitsSvg(fakeDigits(3), [0, 1, 2], { columns: 2, titles: ['<a & "b">', "x", "y"] });
  assert.deepEqual(check(svg, ["g.digit"]), [3]);
  assert.match(svg, /&lt;a &amp; "b"&gt;/);
  assert.throws(() => digitsSvg(fakeDigits(1), [0, 1]), /2 images asked, fewer given/);
});

const steps = (values: number[]) => values.map((v, i) => [i + 1, v] as [number, number]);

Deno.test("lineChartsSvg draws two panels with axes, a line and a legend entry per series, and markers", () => {
  const svg = lineChartsSvg([
    {
      title: "Loss Evolution",
      xLabel: "Step",
      yLabel: "Loss",
      series: [
        { name: "Train Loss", points: steps([0.9, 0.4, 0.3, 0.25]), faint: true },
        { name: "Test Loss", points: [[2, 0.5], [4, 0.33]], markers: true },
      ],
    },
    {
      title: "Accuracy Evolution",
      xLabel: "Step",
      yLabel: "Accuracy (%)",
      series: [
        { name: "Train Accuracy", points: steps([80, 95, 97, 98]) },
        { name: "Test Accuracy", points: [[2, 90], [4, 96]], markers: true },
      ],
    },
  ]);
  const [panels, lines, legends, axes, markers] = check(svg, [
    "g.panel",
    "path.series",
    "g.legend",
    "path.domain",
    "circle.marker",
  ]);
  assert.deepEqual([panels, lines, legends, axes, markers], [2, 4, 4, 4, 4]);
  assert.match(svg, /Accuracy Evolution/);
});

Deno.test("lineChartsSvg puts every legend below the plot area, never over a line", () => {
  const svg = lineChartsSvg([{
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [
      { name: "a", points: steps([1, 5, 2, 8, 3]) },
      { name: "b", points: steps([8, 1, 7, 2, 6]) },
      { name: "c", points: steps([4, 4, 4, 4, 9]) },
    ],
  }]);
  const { document } = parseHTML(`<html><body>${svg}</body></html>`) as unknown as {
    document: { querySelectorAll(s: string): { getAttribute(a: string): string }[] };
  };
  // The x axis sits at the bottom of the plot area: everything above it is plot.
  const axis = [...document.querySelectorAll("g")].find((g) =>
    /^translate\(0,[\d.]+\)$/.test(g.getAttribute("transform") ?? "")
  )!;
  const plotBottom = Number(/translate\(0,([\d.]+)\)/.exec(axis.getAttribute("transform"))![1]);
  const legends = [...document.querySelectorAll("g.legend")];
  assert.equal(legends.length, 3);
  for (const legend of legends) {
    const y = Number(/translate\([\d.]+,([\d.]+)\)/.exec(legend.getAttribute("transform"))![1]);
    assert.ok(y > plotBottom, `legend at y ${y}, inside the plot (bottom ${plotBottom})`);
  }
});

Deno.test("lineChartsSvg survives a single point and a constant series", () => {
  const svg = lineChartsSvg([{
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: "a", points: [[1, 1]] }],
  }]);
  assert.deepEqual(check(svg, ["path.series"]), [1]);
});

Deno.test("scatterSvg draws a point per row and a legend entry per class", () => {
  const n = 100;
  const points = Float32Array.from({ length: 2 * n }, (_, i) => Math.sin(i) * 10);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 7);
  const svg = scatterSvg(points, labels, { title: "t-SNE", classNames: ["zero", "one"] });
  assert.deepEqual(check(svg, ["circle.point", "g.legend"]), [n, 7]);
  assert.match(svg, />one</);
  assert.match(svg, />Component 1</);
  assert.match(svg, />Component 2</);
  assert.throws(() => scatterSvg(points, labels.subarray(1)), /100 points but 99 labels/);
});

Deno.test("confusionSvg draws a 10x10 heat map with the count in each cell", () => {
  const matrix = Array.from(
    { length: 10 },
    (_, i) => Array.from({ length: 10 }, (_, j) => (i === j ? 980 : i + j)),
  );
  const names = Array.from({ length: 10 }, (_, i) => String(i));
  const svg = confusionSvg(matrix, names);
  assert.deepEqual(check(svg, ["rect.cell", "text.count"]), [100, 100]);
  assert.match(svg, />980</);
  assert.throws(() => confusionSvg(matrix, names.slice(1)), /expected a 9x9 matrix/);
});
