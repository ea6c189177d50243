/**
 * Starts TensorFlow.js's WebAssembly (SIMD) backend inside a Worker.
 *
 * The package's own `init()` fetches the .wasm bytes and compiles them, which Workers forbid
 * ("Wasm code generation disallowed by embedder"). Wrangler instead bundles the imported .wasm as a
 * precompiled WebAssembly.Module, so we run the package's Emscripten factory ourselves and hand it that
 * module through Emscripten's `instantiateWasm` hook. tfjs issue #8157 asks for this upstream.
 * Importing `@tensorflow/tfjs-backend-wasm` registers every wasm kernel under the backend name 'wasm';
 * we replace only the backend factory registered under that name.
 */
import * as tf from "@tensorflow/tfjs-core";
import { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import emscriptenFactory from "@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm.js";
import simdModule from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm";

const BACKEND = "wasm";

interface EmscriptenModule {
  cwrap(name: string, returns: string | null, args: string[]): (...args: number[]) => unknown;
  HEAPU8: Uint8Array;
  tfjs?: Record<string, unknown>;
}

let ready: Promise<void> | undefined;

/** Makes tfjs use the SIMD wasm backend. Safe to call often: the first call does the work. */
export function useWasmBackend(): Promise<void> {
  ready ??= start().catch((error: unknown) => {
    ready = undefined; // let a later call retry
    throw error;
  });
  return ready;
}

async function start(): Promise<void> {
  if (tf.getBackend() === BACKEND && tf.engine().backendName === BACKEND) return;
  const module = await instantiate();
  tf.removeBackend(BACKEND);
  tf.registerBackend(BACKEND, () => new BackendWasm(module as never), 2);
  if (!(await tf.setBackend(BACKEND))) throw new Error("tfjs refused the wasm backend");
  await tf.ready();
  startHeapBytes = wasmHeapBytes();
}

/** The tfjs wasm heap's size right after the backend started, before any model: what no model owns. */
let startHeapBytes = 0;
export const initialHeapBytes = (): number => startHeapBytes;

async function instantiate(): Promise<EmscriptenModule> {
  const config = {
    instantiateWasm(imports: WebAssembly.Imports, receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void) {
      WebAssembly.instantiate(simdModule, imports).then((instance) => receive(instance, simdModule));
      return {}; // Emscripten's contract: exports arrive later through `receive`.
    },
  };
  // With nodejs_compat, workerd has a Node-looking `process`; the glue would then take its Node path
  // (require("fs"), __dirname) and fail. Hide it while the factory decides where it runs.
  const g = globalThis as { process?: unknown };
  const savedProcess = g.process;
  g.process = undefined;
  let pending: Promise<EmscriptenModule>;
  try {
    pending = (emscriptenFactory as unknown as (config: object) => Promise<EmscriptenModule>)(config);
  } finally {
    g.process = savedProcess;
  }
  const module = await pending;
  // The same bridge functions the package's own init() adds (backend_wasm.js).
  module.tfjs = {
    init: module.cwrap("init", null, []),
    initWithThreadsCount: module.cwrap("init_with_threads_count", null, ["number"]),
    getThreadsCount: module.cwrap("get_threads_count", "number", []),
    registerTensor: module.cwrap("register_tensor", null, ["number", "number", "number"]),
    disposeData: module.cwrap("dispose_data", null, ["number"]),
    dispose: module.cwrap("dispose", null, []),
  };
  return module;
}

interface WasmTensorData {
  memoryOffset: number;
}

/**
 * Returns a conv filter's bytes to the wasm heap once XNNPACK has packed them. tfjs-backend-wasm
 * builds an XNNPACK operator the first time a filter is used, caching it per filter id together with
 * its own transposed copy, so the filter tensor's own bytes are never read again (tfjs-backend-wasm
 * 4.22 `conv2d_impl.cc`; tfjs is pinned to that version). The tensor stays registered, so the cached
 * operator survives; its offset becomes 0 so a later dispose frees nothing twice.
 * Without this every conv weight is held three times (tensor, transposed copy, packed copy).
 */
export function releasePackedFilter(filter: tf.Tensor): void {
  const backend = tf.backend() as unknown as {
    dataIdMap: { get(id: object): WasmTensorData | undefined };
    wasm: { _free(ptr: number): void };
  };
  const data = backend.dataIdMap.get(filter.dataId);
  if (!data?.memoryOffset) return;
  backend.wasm._free(data.memoryOffset);
  data.memoryOffset = 0;
}

/**
 * Makes room in the tfjs wasm heap for `blocks` (byte sizes) before they are allocated one by one.
 * Emscripten grows its heap by at least 20% of its size each time it runs out, so growing step by step
 * overshoots by up to a fifth: in a fresh heap one allocation of the total, freed at once, grows it in one
 * step. A heap that held an earlier model has holes where that model's weights were (the heap never
 * shrinks): there one contiguous block would not fit them and would grow the heap by the whole total
 * (measured: a switch between two 64x64 AlexNets grew it from ~36 to ~72 MB), so each block is allocated
 * on its own, largest first, letting the holes take what they can, then all are freed.
 */
export function reserveWasmHeap(blocks: readonly number[]): void {
  const backend = tf.backend() as unknown as { wasm: { _malloc(n: number): number; _free(ptr: number): void } };
  const sizes = blocks.filter((n) => n > 0).map(Math.ceil);
  const fresh = wasmHeapBytes() === startHeapBytes;
  const allocations = fresh ? [sizes.reduce((a, b) => a + b, 0)] : sizes.sort((a, b) => b - a);
  const pointers = allocations.map((n) => backend.wasm._malloc(n));
  for (const ptr of pointers) if (ptr) backend.wasm._free(ptr);
}

/**
 * Bytes currently held by the tfjs wasm heap (it grows, never shrinks); 0 when tfjs-wasm was never started
 * (a package with int8 convolutions). The engine's registry of started backends, not tf.backend() or
 * tf.findBackend(): those start the package's own wasm backend, which cannot run in a Worker.
 */
export function wasmHeapBytes(): number {
  const started = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry;
  const backend = started[BACKEND] as { wasm?: EmscriptenModule } | undefined;
  return backend?.wasm?.HEAPU8.buffer.byteLength ?? 0;
}
