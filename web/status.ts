/**
 * The status line (`#status`: the adapter, what the page is doing) and the message shown
 * instead of the page when there is no WebGPU: what is missing and how to get it.
 * @module
 */

/** Writes the status line. */
export function setStatus(text: string): void {
  document.querySelector("#status")!.textContent = text;
}

/** Which part of WebGPU is missing, as one short phrase and the steps to get it. */
export async function missingWebGpu(): Promise<{ what: string; how: string[] } | null> {
  if (!globalThis.isSecureContext) {
    return {
      what: "This page was not opened from a secure context, and browsers give WebGPU to " +
        "secure pages only (https, or http on localhost).",
      how: [
        "Open it as http://127.0.0.1:<port>/ on the machine that runs deno task serve, or",
        "forward the port (ssh -L 8000:127.0.0.1:8000 that-machine) and open http://127.0.0.1:8000/.",
      ],
    };
  }
  if (!("gpu" in navigator) || !navigator.gpu) {
    return {
      what: "This browser has no WebGPU (navigator.gpu is missing).",
      how: [
        "Use Chrome or Edge 113 or newer (Windows, macOS, ChromeOS; Android 121+), Safari 26, " +
        "or Firefox 141+ on Windows.",
        "On Linux, Chrome needs chrome://flags/#enable-unsafe-webgpu enabled (and Vulkan: " +
        "start it with --enable-features=Vulkan).",
        "Check chrome://gpu: its WebGPU line says whether it is on.",
      ],
    };
  }
  const adapter = await navigator.gpu.requestAdapter().catch(() => null);
  if (!adapter) {
    return {
      what: "WebGPU is there, but it offered no adapter: no usable GPU driver, or the GPU is " +
        "on the browser's blocklist.",
      how: [
        "Update the GPU driver, and see chrome://gpu for why WebGPU is off.",
        "Chrome can run WebGPU without a GPU on its software adapter, SwiftShader (slow but " +
        "enough for this page): start it with --enable-unsafe-webgpu " +
        "--use-webgpu-adapter=swiftshader.",
      ],
    };
  }
  return null;
}

/** Shows the no-WebGPU message in place of the page. */
export function showProblem(problem: { what: string; how: string[] }, detail?: string): void {
  const box = document.querySelector<HTMLElement>("#no-webgpu")!;
  box.replaceChildren();
  const title = document.createElement("h2");
  title.textContent = "This page needs WebGPU";
  const what = document.createElement("p");
  what.textContent = problem.what;
  const list = document.createElement("ul");
  for (const step of problem.how) {
    const item = document.createElement("li");
    item.textContent = step;
    list.append(item);
  }
  box.append(title, what, list);
  if (detail) {
    const pre = document.createElement("pre");
    pre.textContent = detail;
    box.append(pre);
  }
  box.hidden = false;
  setStatus("No WebGPU: see below.");
}
