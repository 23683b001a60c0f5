/**
 * The GPU runtime: one device, tensors (a buffer + a shape), WGSL kernels compiled once,
 * and ops (a kernel with its bind group and workgroup count, made once, recorded every step).
 *
 * Uses web APIs only (navigator.gpu, fetch), so it runs in a browser as well as in Deno.
 * @module
 */

import { PLAIN_TIER, type Tier } from "./tier.ts";

/** Which adapter to use: `gpu` insists on hardware, `cpu` asks for the fallback adapter. */
export type DeviceChoice = "auto" | "gpu" | "cpu";

/** The device and what we know of the adapter behind it. */
export interface Runtime {
  device: GPUDevice;
  /** "llvmpipe (LLVM 15.0.6, 256 bits)" or the GPU's name. */
  description: string;
  vendor: string;
  architecture: string;
  /** True for a software adapter (llvmpipe, lavapipe, WARP, SwiftShader). */
  isFallback: boolean;
  /** The kernels layers are built with (lib/tier.ts); chosen once, by lib/device.ts. */
  tier: Tier;
}

const NO_ADAPTER_HELP = [
  "WebGPU has no adapter on this machine.",
  "  - Deno: run with a recent Deno (2.x); on a machine without a GPU, Mesa's llvmpipe",
  "    provides one over OpenGL/EGL (Debian: libegl-mesa0 libgl1-mesa-dri) or Vulkan",
  "    (Debian: mesa-vulkan-drivers). DENO_WEBGPU_BACKEND=gl|vulkan picks the backend.",
  "  - A browser: use one with WebGPU enabled (Chrome 113+, Edge, Safari 26, Firefox 141+).",
].join("\n");

/**
 * Requests the adapter and device for `choice`, with the plain tier. Throws with a message
 * that says how to get an adapter when there is none. Applications call `createRuntime`
 * (lib/device.ts), which also picks the tier.
 *
 * @example
 * ```ts
 * import { requestRuntime } from "./runtime.ts";
 *
 * const rt = await requestRuntime("auto");
 * console.log(rt.description);
 * ```
 */
export async function requestRuntime(choice: DeviceChoice = "auto"): Promise<Runtime> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new Error(`navigator.gpu is missing: this runtime has no WebGPU.\n${NO_ADAPTER_HELP}`);
  }
  const adapter = choice === "cpu"
    ? await navigator.gpu.requestAdapter({ forceFallbackAdapter: true }) ??
      await navigator.gpu.requestAdapter()
    : await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error(NO_ADAPTER_HELP);
  const info = adapter.info;
  const isFallback = info.isFallbackAdapter ?? /llvmpipe|lavapipe|swiftshader|warp/i.test(
    info.description,
  );
  if (choice === "gpu" && isFallback) {
    throw new Error(
      `--device gpu: the only adapter is a software one (${info.description}); ` +
        "use --device auto or cpu, or install the GPU's driver.",
    );
  }
  if (choice === "cpu" && !isFallback) {
    throw new Error(
      `--device cpu: no software adapter was offered (got ${info.description}); use --device auto.`,
    );
  }
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
    },
  });
  device.addEventListener("uncapturederror", (event) => {
    console.error(`WebGPU error: ${(event as GPUUncapturedErrorEvent).error.message}`);
  });
  return {
    device,
    description: info.description || info.device || "unknown adapter",
    vendor: info.vendor,
    architecture: info.architecture,
    isFallback,
    tier: PLAIN_TIER,
  };
}

/** Element types our kernels read and write. */
export type DType = "f32" | "u32" | "i32";

/** A view of a GPU buffer with a shape: `offset` and `size` in elements of 4 bytes. */
export interface Tensor {
  buffer: GPUBuffer;
  shape: number[];
  dtype: DType;
  /** First element inside `buffer`. */
  offset: number;
  /** Number of elements (the product of `shape`). */
  size: number;
  label: string;
}

/** The number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/**
 * Bytes of the buffer behind a tensor of `size` 4-byte elements, rounded up to whole 16-byte
 * texels: the CPU wing reads a tensor's tail as a whole vec4 (a texture mirror copies whole
 * texels, its BatchNorm stores vec4s), so the buffer must reach the end of the last texel.
 * That costs at most 12 bytes a tensor; nothing else is padded.
 */
function bufferBytes(size: number): number {
  return Math.max(1, Math.ceil(size / 4)) * 16;
}

/**
 * Allocates a zero-filled tensor in a buffer of its own.
 *
 * @example
 * ```ts
 * const rt = await requestRuntime("auto");
 * const x = tensor(rt, [32, 1, 28, 28], { label: "x" });
 * ```
 */
export function tensor(
  rt: Runtime,
  shape: number[],
  options: { dtype?: DType; label?: string } = {},
): Tensor {
  const size = numel(shape);
  const label = options.label ?? "tensor";
  const buffer = rt.device.createBuffer({ size: bufferBytes(size), usage: STORAGE, label });
  return { buffer, shape, dtype: options.dtype ?? "f32", offset: 0, size, label };
}

/** A tensor that views `size` elements of `parent` from element `offset`, with a new shape. */
export function view(parent: Tensor, offset: number, shape: number[], label: string): Tensor {
  const size = numel(shape);
  if (offset < 0 || offset + size > parent.buffer.size / 4) {
    throw new Error(`view ${label}: ${offset}+${size} lies outside ${parent.label}`);
  }
  return { buffer: parent.buffer, shape, dtype: parent.dtype, offset, size, label };
}

/** Writes `data` into the tensor (queued; visible to the next submit). */
export function upload(
  rt: Runtime,
  t: Tensor,
  data: Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer> | Int32Array<ArrayBuffer>,
): void {
  if (data.length !== t.size) {
    throw new Error(`upload to ${t.label}: ${data.length} values for a tensor of ${t.size}`);
  }
  rt.device.queue.writeBuffer(t.buffer, t.offset * 4, data);
}

/** Reads a tensor back to the CPU (waits for the queue). */
export async function readback(rt: Runtime, t: Tensor): Promise<Float32Array> {
  const bytes = await readBytes(rt, t);
  return new Float32Array(bytes);
}

/** Reads a u32 tensor back to the CPU (waits for the queue). */
export async function readbackU32(rt: Runtime, t: Tensor): Promise<Uint32Array> {
  return new Uint32Array(await readBytes(rt, t));
}

async function readBytes(rt: Runtime, t: Tensor): Promise<ArrayBuffer> {
  const byteLength = t.size * 4;
  const staging = rt.device.createBuffer({
    size: Math.max(4, byteLength),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    label: `readback ${t.label}`,
  });
  const encoder = rt.device.createCommandEncoder();
  encoder.copyBufferToBuffer(t.buffer, t.offset * 4, staging, 0, byteLength);
  rt.device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return copy;
}

/** A compiled compute pipeline for one entry point of one kernels/*.wgsl file. */
export interface Kernel {
  /** "conv2d.wgsl:forward" — used in error messages and profiles. */
  name: string;
  pipeline: GPUComputePipeline;
}

const sources = new Map<string, Promise<string>>();
const kernels = new WeakMap<GPUDevice, Map<string, Promise<Kernel>>>();

/** The text of kernels/<file> (the CPU wing's: "cpu/conv2d.wgsl"), fetched once. */
export function kernelSource(file: string): Promise<string> {
  let source = sources.get(file);
  if (!source) {
    const url = new URL(`../kernels/${file}`, import.meta.url);
    source = fetch(url).then((response) => {
      if (!response.ok) throw new Error(`kernel ${file}: cannot load ${url} (${response.status})`);
      return response.text();
    });
    sources.set(file, source);
  }
  return source;
}

/**
 * The pipeline for `entry` of kernels/`file` with the given override constants,
 * compiled once per device and cached. Compilation errors name the kernel.
 *
 * @example
 * ```ts
 * const rt = await requestRuntime("auto");
 * const relu = await kernel(rt, "relu.wgsl", "forward", { WORKGROUP: 64 });
 * ```
 */
export function kernel(
  rt: Runtime,
  file: string,
  entry: string,
  constants: Record<string, number> = {},
): Promise<Kernel> {
  let cache = kernels.get(rt.device);
  if (!cache) kernels.set(rt.device, cache = new Map());
  const key = `${file}:${entry}:${JSON.stringify(constants)}`;
  let compiled = cache.get(key);
  if (!compiled) {
    compiled = compile(rt, file, entry, constants);
    cache.set(key, compiled);
  }
  return compiled;
}

async function compile(
  rt: Runtime,
  file: string,
  entry: string,
  constants: Record<string, number>,
): Promise<Kernel> {
  const name = `${file}:${entry}`;
  const code = await kernelSource(file);
  return await checked(rt, `kernel ${name}`, async () => {
    const module = rt.device.createShaderModule({ code, label: file });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length > 0) {
      const text = errors.map((m) => `  ${file}:${m.lineNum}:${m.linePos} ${m.message}`);
      throw new Error(`kernel ${name} does not compile:\n${text.join("\n")}`);
    }
    const pipeline = rt.device.createComputePipeline({
      label: name,
      layout: "auto",
      compute: { module, entryPoint: entry, constants },
    });
    return { name, pipeline };
  });
}

/**
 * Runs `fn` inside validation and out-of-memory error scopes; a captured error is thrown
 * with `what` in its message.
 */
export async function checked<T>(rt: Runtime, what: string, fn: () => T | Promise<T>): Promise<T> {
  rt.device.pushErrorScope("out-of-memory");
  rt.device.pushErrorScope("validation");
  let result: T | undefined, failure: unknown;
  try {
    result = await fn();
  } catch (e) {
    failure = e;
  }
  // Pop both scopes whatever happened, so that later errors are not caught here.
  const validation = await rt.device.popErrorScope();
  const memory = await rt.device.popErrorScope();
  if (failure !== undefined) throw failure;
  if (memory) throw new Error(`${what}: out of GPU memory: ${memory.message}`);
  if (validation) throw new Error(`${what}: ${validation.message}`);
  return result as T;
}

/** A uniform buffer of u32/f32 fields, packed in declaration order (4 bytes each). */
export interface Uniform {
  buffer: GPUBuffer;
  label: string;
}

/**
 * Packs a uniform struct whose fields are all 4-byte scalars, in the order given;
 * `f32:` fields are floats and every other field is a u32.
 * The WGSL struct must declare the same fields in the same order.
 *
 * @example
 * ```ts
 * const rt = await requestRuntime("auto");
 * const u = uniform(rt, "conv1", { batch: 32, channels: 16, "f32:eps": 1e-5 });
 * ```
 */
export function uniform(rt: Runtime, label: string, fields: Record<string, number>): Uniform {
  const names = Object.keys(fields);
  const bytes = Math.max(16, Math.ceil((names.length * 4) / 16) * 16);
  const data = new ArrayBuffer(bytes);
  const view = new DataView(data);
  names.forEach((name, i) => {
    const value = fields[name];
    if (name.startsWith("f32:")) view.setFloat32(i * 4, value, true);
    else {
      if (!Number.isInteger(value) || value < 0) {
        throw new Error(`uniform ${label}.${name}: ${value} is not a u32`);
      }
      view.setUint32(i * 4, value, true);
    }
  });
  const buffer = rt.device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    label: `uniform ${label}`,
  });
  rt.device.queue.writeBuffer(buffer, 0, data);
  return { buffer, label };
}

/** A texture an op binds (the CPU wing's texture mirrors, lib/cpu/texture.ts). */
export interface TextureBinding {
  texture: GPUTexture;
  view: GPUTextureView;
}

/** What an op binds: a tensor (storage), a uniform or a texture, at binding = index. */
export type Binding = Tensor | Uniform | TextureBinding;

/** One dispatch, ready to record: made once, recorded every step. */
export interface DispatchOp {
  kernel: Kernel;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

/** A command outside compute passes (a copy), recorded between them. */
export interface CopyOp {
  label: string;
  encode(encoder: GPUCommandEncoder): void;
}

/** What a step is made of: dispatches, and copies (the CPU wing's texture mirrors). */
export type Op = DispatchOp | CopyOp;

/** The name of an op for profiles and messages: "conv2d.wgsl:forward" or "copy x (texture)". */
export function opName(o: Op): string {
  return "kernel" in o ? o.kernel.name : o.label;
}

/**
 * Makes the bind group of `k` for `bindings` (binding i = bindings[i], group 0) and
 * remembers the workgroup count. Every binding an entry point declares must be used by it.
 */
export function op(
  rt: Runtime,
  k: Kernel,
  bindings: Binding[],
  workgroups: number | [number, number?, number?],
): DispatchOp {
  const [x, y = 1, z = 1] = typeof workgroups === "number" ? [workgroups] : workgroups;
  const limit = rt.device.limits.maxComputeWorkgroupsPerDimension;
  if (x > limit || y > limit || z > limit || x < 1 || y < 1 || z < 1) {
    throw new Error(`${k.name}: ${x}x${y}x${z} workgroups (each dimension 1..${limit})`);
  }
  const entries = bindings.map((b, i): GPUBindGroupEntry => {
    if ("texture" in b) return { binding: i, resource: b.view };
    if ("shape" in b) {
      return {
        binding: i,
        resource: { buffer: b.buffer, offset: b.offset * 4, size: Math.max(4, b.size * 4) },
      };
    }
    return { binding: i, resource: { buffer: b.buffer } };
  });
  const bindGroup = rt.device.createBindGroup({
    label: k.name,
    layout: k.pipeline.getBindGroupLayout(0),
    entries,
  });
  return { kernel: k, bindGroup, workgroups: [x, y, z] };
}

/**
 * Records `ops` in order: runs of dispatches in one compute pass each, copies between them.
 * Repeats the whole list `times` times.
 */
export function record(encoder: GPUCommandEncoder, ops: readonly Op[], times = 1): void {
  let pass: GPUComputePassEncoder | null = null;
  for (let i = 0; i < times; i++) {
    for (const o of ops) {
      if ("encode" in o) {
        pass?.end();
        pass = null;
        o.encode(encoder);
        continue;
      }
      pass ??= encoder.beginComputePass();
      pass.setPipeline(o.kernel.pipeline);
      pass.setBindGroup(0, o.bindGroup);
      pass.dispatchWorkgroups(o.workgroups[0], o.workgroups[1], o.workgroups[2]);
    }
  }
  pass?.end();
}

/** Records `ops` (`times` times over) and submits them once. */
export function submit(rt: Runtime, ops: readonly Op[], times = 1): void {
  const encoder = rt.device.createCommandEncoder();
  record(encoder, ops, times);
  rt.device.queue.submit([encoder.finish()]);
}

/** Resolves when the GPU has finished all submitted work. */
export function idle(rt: Runtime): Promise<void> {
  return rt.device.queue.onSubmittedWorkDone();
}

/**
 * A 2-D grid of workgroups of `size` covering `n` invocations, for counts past the
 * 65,535-workgroup limit of one dimension. The kernel's flat index is
 * `gid.x + gid.y * num_workgroups.x * size`, and it returns when that is >= n.
 */
export function grid(n: number, size: number): [number, number] {
  const total = Math.max(1, Math.ceil(n / size));
  const x = Math.min(total, 65535);
  return [x, Math.ceil(total / x)];
}
