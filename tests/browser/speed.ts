/**
 * Training speed of the page (chromium, WebGPU on SwiftShader) against `deno task train`
 * (Deno, llvmpipe), same model, batch 32, same images: rounds interleaved, medians printed.
 * Not a test.
 *
 * Usage: deno run -A tests/browser/speed.ts [lenet|lenet5] [images per epoch] [rounds]
 * @module
 */

import { join } from "node:path";
import { chromium } from "playwright-core";
import { ROOT, startServer } from "./server.ts";

const [model = "lenet", images = "19200", rounds = "3"] = Deno.args;
const server = await startServer({ runs: join(ROOT, "runs") });
const browser = await chromium.launch({
  executablePath: Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium",
  args: ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"],
});

/** One epoch in the page: the Images/s of its row in the epochs table. */
async function inPage(): Promise<number> {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector("#train:enabled");
  await page.selectOption("select[name=model]", model);
  await page.fill("input[name=epochs]", "1");
  await page.fill("input[name=images]", images);
  await page.click("#train");
  await page.waitForSelector("#epochs tbody tr", { timeout: 600_000 });
  const cells = await page.$$eval("#epochs tbody td", (c) => c.map((x) => x.textContent));
  await page.close();
  return Number(cells[5]);
}

/** One epoch of deno task train: train_images_per_s of its metrics.json. */
async function inDeno(): Promise<number> {
  const out = await Deno.makeTempDir({ dir: join(ROOT, "runs"), prefix: "speed-" });
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "train", "--model", model, "--limit", images, "--epochs", "1", "--quiet"]
      .concat(["--out", out]),
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(new TextDecoder().decode(stderr));
  const records = JSON.parse(await Deno.readTextFile(join(out, "metrics.json")));
  await Deno.remove(out, { recursive: true });
  return records[0].train_images_per_s;
}

const page: number[] = [], deno: number[] = [];
for (let i = 1; i <= Number(rounds); i++) {
  page.push(await inPage());
  deno.push(await inDeno());
  console.log(`round ${i}: page ${page.at(-1)} images/s, deno ${deno.at(-1)} images/s`);
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(
  `${model}, batch 32, ${images} images: page (SwiftShader) ${median(page)}, ` +
    `deno (llvmpipe) ${median(deno)} images/s: ${(median(deno) / median(page)).toFixed(1)}x`,
);
await browser.close();
await server.stop();
