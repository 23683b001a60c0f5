/**
 * The one way the tests and benches find the Python that runs PyTorch (and the other Python
 * references): Debian's /usr/bin/python3 first, where python3-torch, python3-torchvision and
 * python3-sklearn install, then whatever `python3` is on the PATH (a pyenv shim there may
 * shadow Debian's and lack torch, so each candidate must import the modules asked for).
 * @module
 */

/** The candidates, in the order they are tried. */
export const PYTHONS = ["/usr/bin/python3", "python3"] as const;

/** The Debian packages that provide the modules the PyTorch scripts import. */
export const PYTORCH_PACKAGES = ["python3-torch", "python3-torchvision", "python3-sklearn"];

/**
 * The first of {@linkcode PYTHONS} that runs and imports every one of `modules` (none: any
 * python3 that runs), or undefined when none does. Asks anew each time (an install may have
 * happened since).
 *
 * @example
 * ```ts
 * import { findPython } from "./python.ts";
 *
 * const python = await findPython(["torch"]);
 * console.log(python ?? "no python3 imports torch: apt-get install python3-torch");
 * ```
 */
export async function findPython(modules: readonly string[] = []): Promise<string | undefined> {
  const code = modules.length > 0 ? `import ${modules.join(", ")}` : "pass";
  for (const python of PYTHONS) {
    try {
      const { success } = await new Deno.Command(python, {
        args: ["-c", code],
        stdout: "null",
        stderr: "null",
      }).output();
      if (success) return python;
    } catch {
      // not installed: try the next one
    }
  }
  return undefined;
}
