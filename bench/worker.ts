/**
 * The benchmark's Worker: the real app plus /__bench routes that time the engine from inside the
 * isolate and account for its memory. Never deployed (bench/wrangler.bench.toml).
 */
import { createApp } from "../src/http/app";
import { packageKey } from "../src/config";
import { decoderMemoryPeakBytes } from "../src/image";
import { useWasmBackend, wasmHeapBytes } from "../src/engine/tfjs-wasm-backend";
import { useKernelBuild, type KernelBuild } from "../src/engine/feature-kernels";
import { createModelHolder } from "../src/model/served-model";
import type { Bindings } from "../src/http/env";
import { profileForward } from "../src/engine/profile";
import readFloorModule from "../build/kernels/read-floor.wasm";
import { buildStockNetwork } from "./stock-fp32";

interface ReadFloor {
  prepare(bytes: number): void;
  read(bytes: number): number;
}
let readFloor: ReadFloor | undefined;

const models = createModelHolder();
let stockNetwork: { run: (x: Float32Array) => Float32Array; firstMs: number } | undefined;
const app = createApp({ models });

function randomInput(n: number): Float32Array {
  let seed = 12345;
  return Float32Array.from({ length: n }, () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed / 0x7fffffff) * 4 - 2;
  });
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
    const build = (env as { KERNEL_BUILD?: string }).KERNEL_BUILD;
    if (build) useKernelBuild(build as KernelBuild); // before the first load: which int8 build to measure
    if (url.pathname === "/__bench/memory") {
      const classifier = models.loaded();
      return Response.json({
        tfjs_heap_bytes: wasmHeapBytes(),
        kernel_bytes: classifier?.kernelMemoryBytes ?? 0,
        decoder_peak_bytes: decoderMemoryPeakBytes(),
        load_peak_bytes: classifier?.loadPeakBytes ?? 0,
        kernel_build: classifier?.convolutionKernel,
        load_timings_ms: classifier?.loadTimings,
      });
    }
    if (url.pathname === "/__bench/compare") {
      // Ours and the stock fp32 network alternate, pass by pass, in this one isolate, so both see the
      // same machine state; the stock one is built only now, after the memory was read.
      // Built once per isolate, so `npm run bench:peers` can ask for one pass of each, round by round.
      const lease = await models.acquire(env.MODELS, 3_600_000);
      const { manifest } = lease.classifier;
      const x = randomInput(manifest.input.height * manifest.input.width * manifest.input.channels);
      if (!stockNetwork) {
        const file = new Uint8Array(await (await env.MODELS.get(packageKey(manifest.id, manifest.weights.file)))!.arrayBuffer());
        await useWasmBackend(); // ours may not have started tfjs (int8 convolutions)
        const run = buildStockNetwork(manifest, file);
        stockNetwork = { run, firstMs: time(1, () => run(x))[0]! };
      }
      const { run: stock, firstMs: stockFirst } = stockNetwork;
      const ours: number[] = [];
      const stockTimes: number[] = [];
      for (let i = 0; i < n; i++) {
        ours.push(...time(1, () => lease.classifier.forward([x])));
        stockTimes.push(...time(1, () => stock(x)));
      }
      lease.release();
      return Response.json({ ours, stock: stockTimes, stock_first_ms: stockFirst, tfjs_heap_bytes_with_stock: wasmHeapBytes() });
    }
    if (url.pathname === "/__bench/batch") {
      // A multipart-sized batch through the engine two ways, alternating round by round: each image alone
      // (convolutions and dense layers per image), and as one batch (convolutions per image, the dense
      // layers once for all, four rows sharing each weight load). Per-round totals for `size` images.
      const size = Number(url.searchParams.get("size") ?? "8");
      const lease = await models.acquire(env.MODELS, 3_600_000);
      const { manifest } = lease.classifier;
      const values = manifest.input.height * manifest.input.width * manifest.input.channels;
      const inputs = Array.from({ length: size }, (_, i) => randomInput(values).map((v) => v * (1 + i / size)));
      const alone: number[] = [];
      const batched: number[] = [];
      for (let i = 0; i < n; i++) {
        alone.push(
          ...time(1, () => {
            for (const x of inputs) lease.classifier.forward([x]);
          }),
        );
        batched.push(...time(1, () => lease.classifier.forward(inputs)));
      }
      lease.release();
      return Response.json({ size, alone, batched });
    }
    if (url.pathname === "/__bench/profile") {
      // Each layer's mean time over n passes (src/engine/profile.ts), on the model the first classify loaded.
      const lease = await models.acquire(env.MODELS, 3_600_000);
      const { manifest } = lease.classifier;
      const x = randomInput(manifest.input.height * manifest.input.width * manifest.input.channels);
      try {
        return Response.json(profileForward(lease.classifier, x, n, () => performance.now()));
      } finally {
        lease.release();
      }
    }
    if (url.pathname === "/__bench/read-floor") {
      // One pass of 128-bit loads over as many bytes as the dense layers' weights (kernels/read-floor.ts),
      // n times: the fastest this isolate reads memory, against which the dense layers' time is judged. Timed
      // as one loop (the clock here ticks in whole milliseconds, a pass takes a few).
      const bytes = Number(url.searchParams.get("bytes")) & ~63;
      readFloor ??= new WebAssembly.Instance(readFloorModule, {}).exports as unknown as ReadFloor;
      const floor = readFloor;
      floor.prepare(bytes);
      const [total] = time(1, () => {
        for (let i = 0; i < n; i++) floor.read(bytes);
      });
      return Response.json({ bytes, ms: total! / n });
    }
    return app.fetch(request, env, ctx);
  },
};
