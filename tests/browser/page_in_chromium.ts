/**
 * The page in a real browser: Debian's chromium driven by playwright-core, WebGPU on
 * SwiftShader (slow: a few hundred training steps at most). Run by `deno task test:browser`,
 * not by `deno task test`: the file name is not a test file's on purpose.
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { encodeSafetensors } from "../../mod.ts";
import { ROOT, type Server, startServer } from "./server.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const WEBGPU = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"];
const SAMPLE = 1000;

async function withPage(
  server: Server,
  options: { args: string[]; path?: string; init?: string },
  fn: (page: Page) => Promise<void>,
): Promise<void> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: options.args });
  try {
    const page = await browser.newPage({ viewport: { width: 1240, height: 900 }, hasTouch: true });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    if (options.init) await page.addInitScript(options.init);
    await page.goto(new URL(options.path ?? "/", server.url).href);
    await fn(page);
    assert.deepEqual(errors, [], "no uncaught error in the page");
  } finally {
    await browser.close();
  }
}

/** A small run of `deno task train` in `runs`: 640 images, 1 epoch. */
async function trainRun(runs: string): Promise<string> {
  const out = join(runs, "cli");
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "train", "--limit", "640", "--epochs", "1", "--quiet", "--out", out],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return out;
}

/** How many of the first `count` test images the CLI's evaluation gets right. */
async function cliCorrectCount(run: string, count: number): Promise<number> {
  const { stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tests/browser/cli_accuracy.ts", run, String(count)],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const line = new TextDecoder().decode(stdout).match(/^correct (\d+)$/m);
  assert.ok(line, `cli_accuracy.ts printed no count:\n${new TextDecoder().decode(stderr)}`);
  return Number(line[1]);
}

/** `deno task evaluate --run <run>`: its eval.json (accuracy, confusion matrix). */
async function evaluateRun(run: string): Promise<{ accuracy: number; confusion: number[][] }> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "evaluate", "--run", run],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(await Deno.readTextFile(join(run, "eval", "eval.json")));
}

/**
 * PyTorch's test accuracy for a checkpoint loaded into the seed's model with strict=True
 * (tests/pytorch/load_checkpoint.py), or null without a python3 that has torch.
 */
async function torchScore(model: string): Promise<{ accuracy: number; tensors: number } | null> {
  const script = join(ROOT, "tests", "pytorch", "load_checkpoint.py");
  const test = join(ROOT, "data", "mnist", "test.safetensors");
  for (const python of ["python3", "/usr/bin/python3"]) {
    const has = await new Deno.Command(python, { args: ["-c", "import torch"], stderr: "null" })
      .output().then((r) => r.success, () => false);
    if (!has) continue;
    const r = await new Deno.Command(python, {
      args: [script, model, test],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
    return JSON.parse(new TextDecoder().decode(r.stdout));
  }
  return null;
}

const runs = await Deno.makeTempDir({ dir: join(ROOT, "runs"), prefix: "browser-test-" })
  .catch(async () => {
    await Deno.mkdir(join(ROOT, "runs"), { recursive: true });
    return await Deno.makeTempDir({ dir: join(ROOT, "runs"), prefix: "browser-test-" });
  });

Deno.test({
  name: "the page in chromium on SwiftShader",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const run = await trainRun(runs);
    const server = await startServer({ runs });
    try {
      await t.step("trains the seed model and its loss falls", async () => {
        await withPage(server, { args: WEBGPU }, async (page) => {
          await page.waitForSelector("#train:enabled");
          assert.match(await page.textContent("#status") ?? "", /WebGPU on google/);
          await page.fill("input[name=epochs]", "1");
          await page.fill("input[name=images]", "6400");
          await page.click("#train");
          await page.waitForSelector("#epochs tbody tr", { timeout: 120_000 });
          const first = Number(await page.getAttribute("#progress", "data-first-loss"));
          const last = Number(await page.getAttribute("#progress", "data-last-loss"));
          const points = Number(await page.getAttribute("#progress", "data-points"));
          assert.ok(points >= 3, `${points} progress readouts`);
          assert.ok(first > 2 && last < first - 0.2, `loss from ${first} to ${last}`);
          const rate = await page.getAttribute("#progress", "data-images-per-second");
          console.log(`page: ${rate} images/s (lenet, batch 32, SwiftShader)`);
          // The model trained in the page downloads in train's format.
          await page.waitForSelector("#download:enabled");
          const [download] = await Promise.all([
            page.waitForEvent("download"),
            page.click("#download"),
          ]);
          assert.equal(download.suggestedFilename(), "model.safetensors");
          const file = join(runs, "page-model.safetensors");
          await download.saveAs(file);
          const pageAccuracy = await page.textContent("#epochs tbody tr td:nth-child(5)");
          const torch = await torchScore(file);
          if (torch) {
            assert.equal(torch.tensors, 16);
            assert.equal(`${torch.accuracy.toFixed(2)}%`, pageAccuracy, "PyTorch vs the page");
            console.log(`the download in PyTorch (strict=True): ${pageAccuracy} as in the page`);
          } else {
            console.log("no python3 with torch: the PyTorch check of the download is skipped");
          }
        });
      });

      await t.step("Pause hands the model so far to the drawing panel; Stop ends", async () => {
        await withPage(server, { args: WEBGPU }, async (page) => {
          await page.waitForSelector("#train:enabled");
          await page.fill("input[name=epochs]", "2");
          await page.fill("input[name=images]", "32000");
          await page.click("#train");
          await page.waitForSelector("#progress[data-points]", { timeout: 60_000 });
          await page.click("#pause");
          await page.waitForFunction(
            "/^Paused/.test(document.querySelector('#status').textContent)",
          );
          assert.equal(await page.textContent("#pause"), "Resume");
          assert.match(await page.textContent("#model-info") ?? "", /trained in this page/);
          await page.click("#pause");
          await page.waitForFunction(
            "/^Training/.test(document.querySelector('#status').textContent)",
          );
          await page.click("#stop");
          await page.waitForSelector("#train:enabled", { timeout: 60_000 });
          assert.match(
            await page.textContent("#status") ?? "",
            /Stopped lenet: 0 of 2 epoch\(s\) done/,
          );
        });
      });

      await t.step(
        "a run loaded with ?run= scores as the CLI (first 1,000 test images, then all)",
        async () => {
          const cliCorrect = await cliCorrectCount(run, SAMPLE);
          const cli = await evaluateRun(run);
          await withPage(server, { args: WEBGPU, path: "/?run=cli" }, async (page) => {
            await page.waitForSelector("#sample-accuracy[data-correct]", { timeout: 60_000 });
            const correct = Number(await page.getAttribute("#sample-accuracy", "data-correct"));
            assert.equal(correct, cliCorrect, `page ${correct} correct, CLI ${cliCorrect}`);
            assert.ok(correct > 150, "the run learned something");

            // The whole test set: the page's confusion matrix is deno task evaluate's.
            await page.click("#evaluate");
            await page.waitForSelector("#confusion svg", { timeout: 60_000 });
            const cells = await page.$$eval(
              "#confusion text.count",
              (t) => t.map((e) => e.textContent),
            );
            assert.deepEqual(cells.map(Number), cli.confusion.flat());
            assert.match(
              await page.textContent("#test-summary") ?? "",
              new RegExp(`accuracy ${cli.accuracy.toFixed(2)}%`),
            );

            // Strokes drawn with the mouse give a prediction and ten probabilities.
            await page.locator("#draw").scrollIntoViewIfNeeded();
            const box = (await page.locator("#draw").boundingBox())!;
            await page.mouse.move(box.x + 100, box.y + 60);
            await page.mouse.down();
            for (let i = 0; i <= 20; i++) {
              await page.mouse.move(box.x + 100 + i * 4, box.y + 60 + i * 8);
            }
            await page.mouse.up();
            await page.waitForFunction(
              "/^[0-9]$/.test(document.querySelector('#prediction').textContent)",
            );
            const probabilities = await page.$$eval(
              "#probabilities .prob",
              (rows) => rows.map((r) => Number(r.getAttribute("data-probability"))),
            );
            assert.equal(probabilities.length, 10);
            assert.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-4);
            const predicted = Number(await page.textContent("#prediction"));
            assert.equal(predicted, probabilities.indexOf(Math.max(...probabilities)));
            await page.click("#clear");
            assert.equal(await page.textContent("#prediction"), "–");

            // A finger's tap draws too (touch comes as pointer events).
            await page.touchscreen.tap(box.x + 140, box.y + 140);
            await page.waitForFunction(
              "/^[0-9]$/.test(document.querySelector('#prediction').textContent)",
            );
            await page.click("#clear");

            // The t-SNE map: 1,000 points, and a point's digit on hover.
            await page.click("#tsne-run");
            await page.waitForSelector("#tsne svg", { timeout: 120_000 });
            assert.equal(await page.locator("#tsne circle.point").count(), SAMPLE);
            await page.hover("#tsne circle.point >> nth=3", { force: true });
            await page.waitForSelector("#tsne .tip:not([hidden])");
            assert.match(
              await page.textContent("#tsne .tip") ?? "",
              /test image \d+: a \d, predicted \d/,
            );
          });
        },
      );

      await t.step("a dropped file that is not a checkpoint is named and explained", async () => {
        await withPage(server, { args: WEBGPU }, async (page) => {
          await page.waitForSelector("#train:enabled");
          const drop = async (name: string, bytes: Uint8Array) => {
            await page.setInputFiles("#file", {
              name,
              mimeType: "application/octet-stream",
              buffer: Buffer.from(bytes),
            });
            await page.waitForSelector("#drop-message:not([hidden])");
            return await page.textContent("#drop-message") ?? "";
          };
          assert.match(
            await drop("model.safetensors", new TextEncoder().encode("not a safetensors file")),
            /^model\.safetensors is not a safetensors file \(header length/,
          );
          const data = encodeSafetensors({
            images: { dtype: "U8", shape: [1, 28, 28], data: new Uint8Array(784) },
          });
          assert.match(
            await drop("test.safetensors", data),
            /^test\.safetensors is not a model checkpoint: it holds images/,
          );
          assert.match(await page.textContent("#model-info") ?? "", /No model yet/);
        });
      });

      await t.step("without WebGPU the page says what is missing", async () => {
        // No flags: chromium offers no adapter here.
        await withPage(server, { args: [] }, async (page) => {
          await page.waitForSelector("#no-webgpu:not([hidden])");
          assert.match(await page.textContent("#no-webgpu") ?? "", /no adapter/);
          assert.equal(await page.isVisible("#app"), false);
        });
        // No navigator.gpu at all (another browser).
        await withPage(server, {
          args: WEBGPU,
          init: "Object.defineProperty(Navigator.prototype, 'gpu', { value: undefined });",
        }, async (page) => {
          await page.waitForSelector("#no-webgpu:not([hidden])");
          assert.match(await page.textContent("#no-webgpu") ?? "", /navigator\.gpu is missing/);
        });
      });
    } finally {
      await server.stop();
      await Deno.remove(runs, { recursive: true });
    }
  },
});
