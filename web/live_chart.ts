/**
 * The training curves as they grow: loss and accuracy against epochs, one point per progress
 * readout for training (the mean of the batches since the last readout) and one per epoch
 * for the test set. Drawn with d3 in the page's DOM, in the look of curves.svg.
 * @module
 */

import * as d3 from "d3";

/** One point of a curve: x in epochs (fractional while an epoch runs). */
export interface CurvePoint {
  x: number;
  y: number;
}

/** The four series of the two panels. */
export interface Curves {
  trainLoss: CurvePoint[];
  testLoss: CurvePoint[];
  trainAccuracy: CurvePoint[];
  testAccuracy: CurvePoint[];
}

/** Empty curves. */
export function emptyCurves(): Curves {
  return { trainLoss: [], testLoss: [], trainAccuracy: [], testAccuracy: [] };
}

/** Redraws both panels into `container` for `epochs` epochs on the x axis. */
export function drawCurves(container: HTMLElement, curves: Curves, epochs: number): void {
  container.replaceChildren(
    panel("Loss", "Loss", [
      { name: "Train (recent batches)", points: curves.trainLoss },
      { name: "Test", points: curves.testLoss },
    ], { epochs, legend: "top" }),
    panel("Accuracy", "Accuracy (%)", [
      { name: "Train (recent batches)", points: curves.trainAccuracy },
      { name: "Test", points: curves.testAccuracy },
    ], { epochs, legend: "bottom" }),
  );
}

function panel(
  title: string,
  yLabel: string,
  series: { name: string; points: CurvePoint[] }[],
  options: { epochs: number; legend: "top" | "bottom" },
): SVGSVGElement {
  const { epochs } = options;
  const width = 440, height = 300;
  const m = { top: 34, right: 20, bottom: 44, left: 58 };
  const svg = d3.create("svg").attr("viewBox", `0 0 ${width} ${height}`)
    .attr("width", width).attr("height", height).attr("class", "curve-panel");
  const all = series.flatMap((s) => s.points.map((p) => p.y));
  let [lo, hi] = all.length > 0 ? d3.extent(all) as [number, number] : [0, 1];
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
  const x = d3.scaleLinear().domain([0, Math.max(1, epochs)]).range([m.left, width - m.right]);
  const y = d3.scaleLinear().domain([lo, hi]).nice().range([height - m.bottom, m.top]);
  svg.append("g").attr("transform", `translate(0,${height - m.bottom})`)
    .call(d3.axisBottom(x).ticks(Math.min(epochs, 10)).tickFormat(d3.format("d")));
  svg.append("g").attr("transform", `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(6));
  svg.append("text").attr("x", width / 2).attr("y", 20).attr("text-anchor", "middle")
    .attr("font-weight", "bold").text(title);
  svg.append("text").attr("x", (m.left + width - m.right) / 2).attr("y", height - 8)
    .attr("text-anchor", "middle").text("Epoch");
  svg.append("text").attr("text-anchor", "middle")
    .attr("transform", `translate(16,${(m.top + height - m.bottom) / 2}) rotate(-90)`)
    .text(yLabel);
  const line = d3.line().x((p: CurvePoint) => x(p.x)).y((p: CurvePoint) => y(p.y));
  series.forEach((s, k) => {
    const color = d3.schemeCategory10[k];
    svg.append("path").attr("class", `series series-${k}`).attr("fill", "none")
      .attr("stroke", color).attr("stroke-width", 2).attr("d", line(s.points) ?? "");
    svg.append("g").selectAll("circle").data(s.points.length < 40 ? s.points : []).join("circle")
      .attr("r", 3).attr("fill", color).attr("cx", (p: CurvePoint) => x(p.x)).attr(
        "cy",
        (p: CurvePoint) => y(p.y),
      );
    // Loss falls and accuracy rises: the legend goes where the curves are not (mostly).
    const top = options.legend === "top" ? m.top + 4 : height - m.bottom - 14 - 18 * series.length;
    const legend = svg.append("g")
      .attr("transform", `translate(${width - m.right - 170},${top + 18 * k})`);
    legend.append("line").attr("x2", 20).attr("stroke", color).attr("stroke-width", 2);
    legend.append("text").attr("x", 26).attr("dy", "0.35em").attr("font-size", 12).text(s.name);
  });
  return svg.node()!;
}
