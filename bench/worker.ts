/**
 * The benchmark's Worker: the real app plus /__bench routes that time the engine from inside the
 * isolate and account for its memory. Never deployed (bench/wrangler.bench.toml).
 */
import { createApp } from "../src/http/app";
import { packageKey } from "../src/config";
import { decoderMemoryPeakBytes } from "../src/image";
import { useWasmBackend, wasmHeapBytes } from "../src/engine/tfjs-wasm-backend";
import { createModelHolder } from "../src/model/served-model";
import { readManifest, readPointer } from "../src/model/store";
import type { Bindings } from "../src/http/app";
import { buildStockNetwork } from "./stock-fp32";

const models = createModelHolder();
const app = createApp({ models });

function randomInput(n: number): Float32Array {
  let seed = 12345;
  return Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff) * 4 - 2);
}

function time(n: number, run: () => void): number[] {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    run();
    times.push(performance.now() - start);
  }
  return times;
}

export default {
  async fetch(request: Request, env: Bindings, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n") ?? "10");
    if (url.pathname === "/__bench/memory") {
      const classifier = models.loaded();
      return Response.json({
        tfjs_heap_bytes: wasmHeapBytes(),
        kernel_bytes: classifier?.kernelMemoryBytes ?? 0,
        decoder_peak_bytes: decoderMemoryPeakBytes(),
        load_peak_bytes: classifier?.loadPeakBytes ?? 0,
      });
    }
    if (url.pathname === "/__bench/forward") {
      const lease = await models.acquire(env.MODELS, 3_600_000);
      const { input } = lease.classifier.manifest;
      const x = randomInput(input.height * input.width * input.channels);
      const times = time(n, () => lease.classifier.forward([x]));
      lease.release();
      return Response.json({ times });
    }
    if (url.pathname === "/__bench/stock") {
      await useWasmBackend();
      const manifest = await readManifest(env.MODELS, await readPointer(env.MODELS));
      const file = new Uint8Array(await (await env.MODELS.get(packageKey(manifest.id, manifest.weights.file)))!.arrayBuffer());
      const forward = buildStockNetwork(manifest, file);
      const x = randomInput(manifest.input.height * manifest.input.width * manifest.input.channels);
      const first = time(1, () => forward(x));
      const times = time(n, () => forward(x));
      return Response.json({ first_ms: first[0], times, tfjs_heap_bytes: wasmHeapBytes() });
    }
    return app.fetch(request, env, ctx);
  },
};
