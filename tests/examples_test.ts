/**
 * The examples run as the README says, so that they cannot rot: hello_webgpu squares its
 * numbers, train_mnist trains on a few synthetic images and reports a test accuracy.
 * @module
 */

import { syntheticData } from "./util/synthetic.ts";

async function runExample(name: string, args: string[] = []) {
  const script = new URL(`../examples/${name}`, import.meta.url).pathname;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const stdout = text(output.stdout), stderr = text(output.stderr);
  if (!output.success) throw new Error(`${name} exited ${output.code}:\n${stdout}\n${stderr}`);
  return { stdout, stderr };
}

Deno.test("examples/hello_webgpu.ts squares 0..7 on the GPU", async () => {
  const { stdout } = await runExample("hello_webgpu.ts");
  if (!stdout.includes("out: 0 1 4 9 16 25 36 49\n")) throw new Error(`output:\n${stdout}`);
});

Deno.test("examples/train_mnist.ts learns the synthetic classes in 2 epochs of 960 images", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Each synthetic class lights its own band of rows: 60 steps of 32 learn it (97% here).
    await syntheticData(dir, { train: 1000, test: 200 });
    const args = ["--data", dir, "--limit", "960", "--epochs", "2"];
    const { stdout } = await runExample("train_mnist.ts", args);
    const accuracy = Number(stdout.match(/epoch 2: .* test accuracy ([\d.]+)%/)?.[1]);
    // Chance is 10%.
    if (!(accuracy > 50)) throw new Error(`test accuracy ${accuracy}%:\n${stdout}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
