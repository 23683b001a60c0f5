import assert from "node:assert/strict";
import { join } from "node:path";
import { pathSegments } from "../../scripts/serve.ts";
import { rawStatus, ROOT, startServer } from "./server.ts";

Deno.test("pathSegments refuses every segment that could leave its folder, encoded or not", () => {
  assert.deepEqual(pathSegments("/"), []);
  assert.deepEqual(pathSegments("/kernels/cpu/a%20b.wgsl"), ["kernels", "cpu", "a b.wgsl"]);
  for (
    const path of [
      "/kernels/../deno.json",
      "/kernels/%2e%2e/deno.json",
      "/kernels/%2E%2E/deno.json",
      "/kernels/..%2fdeno.json",
      "/kernels/..%5cdeno.json",
      "/kernels/./relu.wgsl",
      "/kernels//relu.wgsl",
      "/kernels/%00.wgsl",
      "/kernels/%zz.wgsl",
    ]
  ) assert.equal(pathSegments(path), null, path);
});

Deno.test("serve answers for the page, kernels, data and runs, and 404 for any other path", async () => {
  const runs = await Deno.makeTempDir();
  await Deno.mkdir(join(runs, "a"));
  await Deno.writeTextFile(join(runs, "a", "secret.txt"), "no");
  const server = await startServer({ runs });
  try {
    for (
      const path of [
        "/",
        "/web/app.js",
        "/web/style.css",
        "/kernels/relu.wgsl",
        "/data/mnist/test.safetensors",
        "/runs/index.json",
      ]
    ) assert.equal(await rawStatus(server.url, path), 200, path);
    for (
      const path of [
        "/kernels/../deno.json",
        "/kernels/%2e%2e/deno.json",
        "/kernels/..%2f..%2fdeno.json",
        "/kernels/..%2f..%2fetc%2fpasswd.wgsl",
        "/data/mnist/../../deno.json",
        "/data/..%2fdeno.json/train.safetensors",
        "/runs/a/secret.txt",
        "/runs/..%2f..%2fetc/model.safetensors",
        "/web/main.ts",
        "/web/../deno.json",
        "/deno.json",
        "/etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
      ]
    ) assert.equal(await rawStatus(server.url, path), 404, path);
    const response = await fetch(new URL("/runs/index.json", server.url));
    assert.deepEqual(await response.json(), []);
  } finally {
    await server.stop();
    await Deno.remove(runs, { recursive: true });
  }
});

Deno.test("serve --help names its options", async () => {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "scripts/serve.ts", "--help"],
    cwd: ROOT,
    stdout: "piped",
  }).output();
  assert.equal(code, 0);
  const text = new TextDecoder().decode(stdout);
  for (const option of ["--port", "--host", "--data", "--runs"]) {
    assert.match(text, new RegExp(option));
  }
});
