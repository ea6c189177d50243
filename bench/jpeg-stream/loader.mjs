/**
 * Lets Node 22 import the Worker's TypeScript image modules as they are (node --import ./loader.mjs):
 * extension-less relative imports resolve to .ts (Node strips the types itself), and a .wasm import becomes
 * a compiled WebAssembly.Module, as wrangler bundles it for the Worker.
 */
import { register } from "node:module";

register(
  "data:text/javascript," +
    encodeURIComponent(`
import { readFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
  if (/^\\.\\.?\\//.test(specifier) && !/\\.[a-z]+$/.test(specifier) && context.parentURL?.endsWith(".ts")) {
    return next(specifier + ".ts", context);
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url.endsWith(".wasm")) {
    const bytes = readFileSync(new URL(url));
    const source = "export default new WebAssembly.Module(new Uint8Array([" + bytes.join(",") + "]));";
    return { format: "module", source, shortCircuit: true };
  }
  return next(url, context);
}
`),
);
