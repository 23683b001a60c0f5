/**
 * The README's screenshots of the page, taken in chromium on SwiftShader: training (at the
 * middle of its second epoch), drawing a digit with a run loaded, the look inside, the t-SNE
 * map and the test set's mistakes. Not a test.
 *
 * Usage: deno run -A tests/browser/screenshots.ts <run name under runs/> [out folder]
 * (the run: e.g. `deno task train --epochs 2 --out runs/seed-2-epochs`)
 * @module
 */

import { join } from "node:path";
import { chromium } from "playwright-core";
import { ROOT, startServer } from "./server.ts";

const [run, out = join(ROOT, "docs", "browser")] = Deno.args;
if (!run) throw new Error("usage: screenshots.ts <run name under runs/> [out folder]");
await Deno.mkdir(out, { recursive: true });
const server = await startServer({ runs: join(ROOT, "runs") });
const browser = await chromium.launch({
  executablePath: Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium",
  args: ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
  await page.goto(server.url);
  await page.waitForSelector("#train:enabled");
  await page.fill("input[name=epochs]", "3");
  await page.fill("input[name=images]", "9600");
  await page.click("#train");
  await page.waitForSelector("#epochs tbody tr:nth-child(2)", { timeout: 300_000 });
  await page.waitForTimeout(5000);
  await page.locator("#train-panel").screenshot({ path: join(out, "train.png") });
  await page.click("#stop");

  await page.goto(new URL(`/?run=${encodeURIComponent(run)}`, server.url).href);
  await page.waitForSelector("#sample-accuracy[data-correct]", { timeout: 60_000 });
  // A 7: the bar, then the stem.
  const box = (await page.locator("#draw").boundingBox())!;
  const path = [[70, 70], [215, 66], [190, 120], [150, 180], [125, 235]];
  await page.mouse.move(box.x + path[0][0], box.y + path[0][1]);
  await page.mouse.down();
  for (let k = 1; k < path.length; k++) {
    for (let i = 1; i <= 10; i++) {
      const [x0, y0] = path[k - 1], [x1, y1] = path[k];
      await page.mouse.move(box.x + x0 + ((x1 - x0) * i) / 10, box.y + y0 + ((y1 - y0) * i) / 10);
    }
  }
  await page.mouse.up();
  await page.waitForTimeout(1500);
  await page.locator("#draw-panel").scrollIntoViewIfNeeded();
  await page.screenshot({
    path: join(out, "draw.png"),
    fullPage: true,
    clip: await clipOf(page, ["#runs-panel", "#draw-panel"]),
  });
  await page.locator("#inside-panel").screenshot({ path: join(out, "inside.png") });

  await page.click("#tsne-run");
  await page.waitForSelector("#tsne svg", { timeout: 300_000 });
  await page.locator("#tsne-panel").scrollIntoViewIfNeeded();
  await page.hover("#tsne circle.point >> nth=17", { force: true });
  await page.locator("#tsne-panel").screenshot({ path: join(out, "tsne.png") });
  await page.click("#evaluate");
  await page.waitForSelector("#confusion svg", { timeout: 300_000 });
  await page.locator("#test-panel").screenshot({ path: join(out, "mistakes.png") });
  console.log(`wrote ${out}/{train,draw,inside,tsne,mistakes}.png`);
} finally {
  await browser.close();
  await server.stop();
}

/** The rectangle around several elements, in page coordinates, for one screenshot. */
async function clipOf(page: import("playwright-core").Page, selectors: string[]) {
  const [scrollX, scrollY] = await page.evaluate("[scrollX, scrollY]") as number[];
  const boxes = (await Promise.all(selectors.map((s) => page.locator(s).boundingBox())))
    .map((b) => ({ ...b!, x: b!.x + scrollX, y: b!.y + scrollY }));
  const x = Math.min(...boxes.map((b) => b.x)), y = Math.min(...boxes.map((b) => b.y));
  const right = Math.max(...boxes.map((b) => b.x + b.width));
  const bottom = Math.max(...boxes.map((b) => b.y + b.height));
  return { x, y, width: right - x, height: bottom - y };
}
