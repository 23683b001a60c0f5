/**
 * Hello, WebGPU: one kernel, one buffer, one dispatch, one readback. Plain WebGPU, no library:
 * everything lib/runtime.ts does for the real kernels, once, by hand.
 *
 *     deno run examples/hello_webgpu.ts
 *
 * @module
 */

if (Deno.args.length > 0) {
  console.log("usage: deno run examples/hello_webgpu.ts  (squares 0..7 on the GPU; no options)");
  Deno.exit(Deno.args[0] === "--help" ? 0 : 2);
}

// 1. The device. The adapter is a GPU or a software one (Mesa's llvmpipe on a machine without).
const adapter = await navigator.gpu?.requestAdapter();
if (!adapter) throw new Error("no WebGPU adapter (see the README's Install)");
const device = await adapter.requestDevice();
console.log(`adapter: ${adapter.info.description || adapter.info.vendor || "unknown"}`);

// 2. The kernel, in WGSL: invocation i squares element i of the buffer, in place.
const code = `
@group(0) @binding(0) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i < arrayLength(&x)) { // the last workgroup may reach past the end
    x[i] = x[i] * x[i];
  }
}`;
const pipeline = device.createComputePipeline({
  layout: "auto",
  compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
});

// 3. One buffer on the GPU, filled from the CPU.
const input = Float32Array.from({ length: 8 }, (_, i) => i);
const buffer = device.createBuffer({
  size: input.byteLength,
  usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
});
device.queue.writeBuffer(buffer, 0, input);

// 4. One dispatch: the buffer bound to binding 0, ceil(8 / 64) = 1 workgroup of 64
// invocations; then a copy into a buffer the CPU may map. Nothing runs until `submit`.
const bindGroup = device.createBindGroup({
  layout: pipeline.getBindGroupLayout(0),
  entries: [{ binding: 0, resource: { buffer } }],
});
const readable = device.createBuffer({
  size: input.byteLength,
  usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
});
const encoder = device.createCommandEncoder();
const pass = encoder.beginComputePass();
pass.setPipeline(pipeline);
pass.setBindGroup(0, bindGroup);
pass.dispatchWorkgroups(Math.ceil(input.length / 64));
pass.end();
encoder.copyBufferToBuffer(buffer, 0, readable, 0, input.byteLength);
device.queue.submit([encoder.finish()]);

// 5. The readback: mapping waits for the GPU to finish, then the bytes are ours.
await readable.mapAsync(GPUMapMode.READ);
const output = new Float32Array(readable.getMappedRange().slice(0));
readable.unmap();
console.log(`in:  ${input.join(" ")}`);
console.log(`out: ${output.join(" ")}`);
device.destroy();
