/**
 * SVG charts drawn with d3 on linkedom's server-side DOM: digits, loss/accuracy curves, a
 * t-SNE scatter and a confusion matrix. Pure functions: data in, an SVG string out.
 *
 * @module
 */

import * as d3 from "d3";
import { parseHTML } from "linkedom";

const SVG_NS = "http://www.w3.org/2000/svg";

/** Options of {@linkcode digitsSvg}. */
export interface DigitsOptions {
  /** How many images to draw (default: all labels). */
  count?: number;
  /** Images per row (default: min(count, 10)). */
  columns?: number;
  /** One title per image (default `Digit: <label>`). */
  titles?: string[];
  /** Image height and width in pixels (default 28). */
  side?: number;
  /** Screen pixels per image pixel (default 3). */
  scale?: number;
  /** A line above the images that says what they are. */
  heading?: string;
}

/**
 * Draws images as grayscale (0 black, 255 white) with a title above each, like the notebook's
 * `show_images`. Each image is a black square and one path per gray level (16 levels), made of
 * horizontal runs, which keeps the file small.
 *
 * @example
 * ```ts
 * const svg = digitsSvg(new Uint8Array(2 * 28 * 28), [7, 2]); // images u8 [N,28,28]
 * ```
 */
export function digitsSvg(
  images: Uint8Array,
  labels: ArrayLike<number>,
  options: DigitsOptions = {},
): string {
  const side = options.side ?? 28, scale = options.scale ?? 3;
  const count = options.count ?? labels.length;
  if (images.length < count * side * side || labels.length < count) {
    throw new Error(`digitsSvg: ${count} images asked, fewer given`);
  }
  const columns = options.columns ?? Math.min(count, 10);
  const cell = side * scale, titleHeight = 18, gap = 10;
  const rows = Math.ceil(count / columns);
  const head = options.heading ? 24 : 0;
  const svgWidth = columns * (cell + gap) + gap;
  const svg = newSvg(svgWidth, head + rows * (cell + titleHeight + gap) + gap);
  if (options.heading) {
    svg.append("text").attr("class", "heading").attr("x", svgWidth / 2).attr("y", 20)
      .attr("text-anchor", "middle").attr("font-weight", "bold").text(options.heading);
  }
  for (let i = 0; i < count; i++) {
    const x = gap + (i % columns) * (cell + gap);
    const y = head + gap + Math.floor(i / columns) * (cell + titleHeight + gap);
    const g = svg.append("g").attr("class", "digit").attr("transform", `translate(${x},${y})`);
    g.append("text").attr("x", cell / 2).attr("y", 13).attr("text-anchor", "middle")
      .text(options.titles?.[i] ?? `Digit: ${labels[i]}`);
    const image = g.append("g")
      .attr("transform", `translate(0,${titleHeight}) scale(${scale})`)
      .attr("shape-rendering", "crispEdges");
    image.append("rect").attr("width", side).attr("height", side).attr("fill", "black");
    const paths = grayRuns(images.subarray(i * side * side, (i + 1) * side * side), side);
    for (const [level, d] of paths) {
      const v = level * 17;
      image.append("path").attr("fill", `rgb(${v},${v},${v})`).attr("d", d);
    }
  }
  return serialize(svg);
}

/** One series of a {@linkcode LinePanel}: points (x, y) in order of x. */
export interface LineSeries {
  name: string;
  points: [number, number][];
  /** A thin pale line (raw per-step values under their running mean). */
  faint?: boolean;
  /** A dot at each point, joined by a dashed line (sparse values: one per epoch). */
  markers?: boolean;
}

/** One panel of {@linkcode lineChartsSvg}. */
export interface LinePanel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
}

/**
 * Draws panels side by side, each with axes, labels, a title, one line per series and a
 * legend below the plot (so it never covers a line): the notebook's loss and accuracy curves,
 * along the steps.
 *
 * @example
 * ```ts
 * const svg = lineChartsSvg([{
 *   title: "Loss Evolution", xLabel: "Step", yLabel: "Loss",
 *   series: [{ name: "Train Loss", points: [[1, 0.5], [2, 0.2]] }],
 * }]);
 * ```
 */
export function lineChartsSvg(panels: LinePanel[]): string {
  const width = 440, plotHeight = 320, legendRow = 18;
  const rows = Math.max(0, ...panels.map((p) => p.series.length));
  const height = plotHeight + rows * legendRow + 8;
  const m = { top: 34, right: 20, bottom: 48, left: 62 };
  const svg = newSvg(width * panels.length, height);
  const color = d3.scaleOrdinal(d3.schemeCategory10);
  panels.forEach((panel, p) => {
    const g = svg.append("g").attr("class", "panel").attr("transform", `translate(${p * width},0)`);
    const all = panel.series.flatMap((s) => s.points);
    let [x0, x1] = all.length ? d3.extent(all, (q: [number, number]) => q[0]) : [0, 1];
    if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
    let [lo, hi] = all.length ? d3.extent(all, (q: [number, number]) => q[1]) : [0, 1];
    if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
    const x = d3.scaleLinear().domain([x0, x1]).range([m.left, width - m.right]);
    const y = d3.scaleLinear().domain([lo, hi]).nice().range([plotHeight - m.bottom, m.top]);
    g.append("g").attr("transform", `translate(0,${plotHeight - m.bottom})`)
      .call(d3.axisBottom(x).ticks(6).tickFormat(d3.format(",")));
    g.append("g").attr("transform", `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(6));
    g.append("text").attr("x", width / 2).attr("y", 20).attr("text-anchor", "middle")
      .attr("font-weight", "bold").text(panel.title);
    g.append("text").attr("x", (m.left + width - m.right) / 2).attr("y", plotHeight - 10)
      .attr("text-anchor", "middle").text(panel.xLabel);
    g.append("text").attr(
      "transform",
      `translate(16,${(m.top + plotHeight - m.bottom) / 2}) rotate(-90)`,
    )
      .attr("text-anchor", "middle").text(panel.yLabel);
    const line = d3.line().x((q: [number, number]) => x(q[0])).y((q: [number, number]) => y(q[1]));
    panel.series.forEach((s, k) => {
      const stroke = color(k);
      g.append("path").attr("class", "series").attr("fill", "none").attr("stroke", stroke)
        .attr("stroke-width", s.faint ? 1 : 2).attr("stroke-opacity", s.faint ? 0.35 : 1)
        .attr("stroke-dasharray", s.markers ? "4 3" : null).attr("d", line(s.points));
      if (s.markers) {
        for (const [px, py] of s.points) {
          g.append("circle").attr("class", "marker").attr("r", 4).attr("fill", stroke)
            .attr("cx", x(px).toFixed(1)).attr("cy", y(py).toFixed(1));
        }
      }
      const legend = g.append("g").attr("class", "legend")
        .attr("transform", `translate(${m.left},${plotHeight + legendRow * k + 4})`);
      legend.append("line").attr("x2", 20).attr("stroke", stroke).attr("stroke-width", 2)
        .attr("stroke-opacity", s.faint ? 0.35 : 1);
      if (s.markers) legend.append("circle").attr("cx", 10).attr("r", 4).attr("fill", stroke);
      legend.append("text").attr("x", 26).attr("dy", "0.35em").text(s.name);
    });
  });
  return serialize(svg);
}

/** Options of {@linkcode scatterSvg}. */
export interface ScatterOptions {
  title?: string;
  /** Legend names, indexed by label (default: the label itself). */
  classNames?: string[];
  /** Axis labels (default the notebook's: "Component 1", "Component 2"). */
  xLabel?: string;
  yLabel?: string;
}

/**
 * Draws 2-D points (a t-SNE embedding, `points` [N,2]) coloured by label with
 * d3.schemeCategory10, and a legend.
 *
 * @example
 * ```ts
 * const svg = scatterSvg(new Float32Array([0, 0, 1, 1]), [3, 7], { title: "t-SNE" });
 * ```
 */
export function scatterSvg(
  points: Float32Array,
  labels: ArrayLike<number>,
  options: ScatterOptions = {},
): string {
  const count = points.length / 2;
  if (!Number.isInteger(count) || labels.length !== count) {
    throw new Error(`scatterSvg: ${points.length / 2} points but ${labels.length} labels`);
  }
  const width = 640, height = 540, legendWidth = 140, pad = 24, top = 40, left = 48;
  const bottom = 44;
  const svg = newSvg(width + legendWidth, height);
  const xs = Array.from({ length: count }, (_, i) => points[2 * i]);
  const ys = Array.from({ length: count }, (_, i) => points[2 * i + 1]);
  const x = d3.scaleLinear().domain(d3.extent(xs)).range([left, width - pad]);
  const y = d3.scaleLinear().domain(d3.extent(ys)).range([height - bottom, top]);
  svg.append("text").attr("x", width / 2).attr("y", 24).attr("text-anchor", "middle")
    .attr("font-weight", "bold").text(options.title ?? "");
  svg.append("g").attr("class", "axis").attr("transform", `translate(0,${height - bottom + 8})`)
    .call(d3.axisBottom(x).ticks(6));
  svg.append("g").attr("class", "axis").attr("transform", `translate(${left - 8},0)`)
    .call(d3.axisLeft(y).ticks(6));
  svg.append("text").attr("x", (left + width - pad) / 2).attr("y", height - 6)
    .attr("text-anchor", "middle").text(options.xLabel ?? "Component 1");
  svg.append("text").attr("text-anchor", "middle")
    .attr("transform", `translate(12,${(top + height - bottom) / 2}) rotate(-90)`)
    .text(options.yLabel ?? "Component 2");
  const dots = svg.append("g").attr("fill-opacity", 0.8);
  for (let i = 0; i < count; i++) {
    dots.append("circle").attr("class", "point").attr("r", 2.5)
      .attr("cx", x(xs[i]).toFixed(1)).attr("cy", y(ys[i]).toFixed(1))
      .attr("fill", d3.schemeCategory10[labels[i] % 10]);
  }
  const classes = [...new Set(Array.from(labels))].sort((a, b) => a - b);
  classes.forEach((c, k) => {
    const legend = svg.append("g").attr("class", "legend")
      .attr("transform", `translate(${width + 10},${top + 20 * k})`);
    legend.append("circle").attr("r", 5).attr("fill", d3.schemeCategory10[c % 10]);
    legend.append("text").attr("x", 12).attr("dy", "0.35em").text(options.classNames?.[c] ?? c);
  });
  return serialize(svg);
}

/**
 * Draws a confusion matrix (rows: true class, columns: predicted class) as a heat map with the
 * count in each cell.
 *
 * @example
 * ```ts
 * const svg = confusionSvg([[5, 1], [0, 7]], ["0", "1"]);
 * ```
 */
export function confusionSvg(matrix: number[][], classNames: string[]): string {
  const n = matrix.length;
  if (classNames.length !== n || matrix.some((row) => row.length !== n)) {
    throw new Error(`confusionSvg: expected a ${classNames.length}x${classNames.length} matrix`);
  }
  const size = 44, left = 110, top = 44, bottom = 100;
  const svg = newSvg(left + n * size + 20, top + n * size + bottom);
  const max = Math.max(1, ...matrix.flat());
  const color = d3.scaleSequential(d3.interpolateBlues).domain([0, max]);
  svg.append("text").attr("x", left + (n * size) / 2).attr("y", 24).attr("text-anchor", "middle")
    .attr("font-weight", "bold").text("Confusion matrix");
  matrix.forEach((row, i) =>
    row.forEach((v, j) => {
      svg.append("rect").attr("class", "cell").attr("x", left + j * size)
        .attr("y", top + i * size).attr("width", size).attr("height", size)
        .attr("fill", color(v)).attr("stroke", "white");
      svg.append("text").attr("class", "count").attr("x", left + j * size + size / 2)
        .attr("y", top + i * size + size / 2).attr("dy", "0.35em").attr("text-anchor", "middle")
        .attr("font-size", 11).attr("fill", v > max / 2 ? "white" : "black").text(v);
    })
  );
  classNames.forEach((name, i) => {
    svg.append("text").attr("x", left - 6).attr("y", top + i * size + size / 2).attr("dy", "0.35em")
      .attr("text-anchor", "end").text(name);
    svg.append("text").attr("text-anchor", "end").attr("dy", "0.35em")
      .attr(
        "transform",
        `translate(${left + i * size + size / 2},${top + n * size + 6}) rotate(-60)`,
      )
      .text(name);
  });
  svg.append("text").attr("x", left + (n * size) / 2).attr("y", top + n * size + bottom - 8)
    .attr("text-anchor", "middle").text("Predicted");
  svg.append("text").attr("text-anchor", "middle")
    .attr("transform", `translate(16,${top + (n * size) / 2}) rotate(-90)`).text("True");
  return serialize(svg);
}

/** Runs of equal gray level (0..15, level 0 left out) as one path string per level. */
function grayRuns(pixels: Uint8Array, side: number): Map<number, string> {
  const runs = new Map<number, string>();
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side;) {
      const level = Math.round(pixels[y * side + x] / 17);
      let end = x + 1;
      while (end < side && Math.round(pixels[y * side + end] / 17) === level) end++;
      if (level > 0) {
        runs.set(level, (runs.get(level) ?? "") + `M${x} ${y}h${end - x}v1h${x - end}z`);
      }
      x = end;
    }
  }
  return runs;
}

// d3 is untyped here (npm:d3 ships no types): selections are `any`.
// deno-lint-ignore no-explicit-any
type Selection = any;

/** A white-background <svg> in a fresh linkedom document. */
function newSvg(width: number, height: number): Selection {
  const { document } = parseHTML("<!DOCTYPE html><html><body></body></html>") as unknown as {
    document: { body: unknown };
  };
  const svg = d3.select(document.body).append("svg")
    .attr("xmlns", SVG_NS).attr("width", width).attr("height", height)
    .attr("viewBox", `0 0 ${width} ${height}`)
    .attr("font-family", "sans-serif").attr("font-size", 12);
  svg.append("rect").attr("width", width).attr("height", height).attr("fill", "white");
  return svg;
}

function serialize(svg: Selection): string {
  return svg.node().outerHTML;
}
