// Wrangler (and the test pool) bundle `.wasm` imports as precompiled modules.
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
