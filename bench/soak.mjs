#!/usr/bin/env node
/**
 * Usage: npm run soak [-- --requests 10000] [--concurrency 8] [--sample-every 250] [--max-seconds 1800]
 *                     [--model DIR] [--seed N] [--strict] [--port 8811] [--inspector-port 9231] [--json]
 *   (`npm run soak -- --help` lists the options)
 *
 * Runs `wrangler dev` on loopback over a seeded local bucket and sends a mix of good requests (sample photos and
 * Fashion-MNIST PNGs as raw bytes, JSON byte arrays, base64, multipart batches) and hostile ones (the fuzzer's
 * mutations). Every --sample-every requests it forces a GC through the V8 inspector and samples live JS heap and ArrayBuffer
 * bytes, and /readyz's wasm count. Prints whether the heap stayed flat (median of the last quarter of samples
 * against the first), the largest sample, failures (a good request not answered 200; any 5xx, timeout or
 * dropped connection) and p50/p99 latency. Exits 1 on a failure or a heap that grew.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { findDefaultPackage } from "../scripts/lib/model-package.mjs";
import { connectInspector } from "../scripts/lib/inspector.mjs";
import { parseCli, usageError } from "../scripts/lib/cli.mjs";
import { assertPortFree, startWranglerDev } from "../scripts/lib/wrangler-dev.mjs";
import { hostileRequest, KNOWN_FAILING } from "../test/support/fuzz-mutators.ts";
import { mulberry32 } from "../test/support/random.ts";
import { seedLocalBucket } from "./bench-package.mjs";

/** Growth of the last quarter's median over the first quarter's that still counts as flat. */
const FLAT_TOLERANCE_BYTES = 2e6;
const REQUEST_TIMEOUT_MS = 60_000;

const spec = {
  name: "soak",
  summary:
    "Sends wrangler dev a long shuffled mix of good and hostile requests, sampling the isolate's heap after forced GCs: fails on a failed request or a heap that grew.",
  options: {
    requests: { type: "string", default: "10000", value: "N", help: "Requests to send in all, half good, half hostile, shuffled." },
    concurrency: { type: "string", default: "8", value: "N", help: "Requests in flight at once." },
    "sample-every": { type: "string", default: "250", value: "N", help: "Force a GC and sample the isolate's heap every N requests." },
    "max-seconds": { type: "string", default: "1800", value: "N", help: "Stop sending after N seconds, and report what was sent." },
    model: { type: "string", value: "DIR", help: "The package to serve (default: the shipped one in model/)." },
    seed: { type: "string", default: "7", value: "N", help: "The seed of the request mix." },
    strict: {
      type: "boolean",
      default: false,
      help: "Also send the hostile classes listed as known failing (test/support/fuzz-mutators.ts).",
    },
    port: { type: "string", default: "8811", value: "N", help: "wrangler dev's HTTP port on 127.0.0.1." },
    "inspector-port": { type: "string", default: "9231", value: "N", help: "wrangler dev's V8 inspector port on 127.0.0.1." },
    json: { type: "boolean", default: false, help: "Print one JSON object on stdout (progress goes to stderr)." },
  },
};
const { values } = parseCli(spec);
const [total, concurrency, sampleEvery, maxSeconds, seed, port, inspectorPort] = [
  "requests",
  "concurrency",
  "sample-every",
  "max-seconds",
  "seed",
  "port",
  "inspector-port",
].map((k) => {
  const n = Number(values[k]);
  if (!Number.isInteger(n) || n <= 0) usageError(spec, `--${k} must be a positive integer, got ${values[k]}`);
  return n;
});
const log = (...m) => (values.json ? process.stderr : process.stdout).write(`${m.join(" ")}\n`);
const root = resolve(import.meta.dirname, "..");
const stateDir = join(root, "bench/.state/soak");

function samples() {
  const photos = readdirSync(join(root, "samples/photos"))
    .filter((f) => f.endsWith(".jpg"))
    .map((f) => readFileSync(join(root, "samples/photos", f)));
  const pngs = readdirSync(join(root, "samples/fmnist"))
    .filter((f) => f.endsWith(".png"))
    .map((f) => readFileSync(join(root, "samples/fmnist", f)));
  return { jpegs: photos.map((b) => new Uint8Array(b)), pngs: pngs.map((b) => new Uint8Array(b)) };
}

/** A good request in one of the accepted forms: { kind, init }. */
function goodRequest(random, bases) {
  const all = [...bases.jpegs, ...bases.pngs];
  const image = all[Math.floor(random() * all.length)];
  const type = image[0] === 0x89 ? "image/png" : "image/jpeg";
  const form = ["raw", "raw", "json-array", "json-base64", "multipart"][Math.floor(random() * 5)];
  if (form === "raw") return { kind: "good-raw", init: { method: "POST", headers: { "content-type": type }, body: image } };
  if (form === "json-array")
    return {
      kind: "good-json-array",
      init: { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ image: [...image] }) },
    };
  if (form === "json-base64")
    return {
      kind: "good-json-base64",
      init: {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ image: Buffer.from(image).toString("base64") }),
      },
    };
  const form8 = new FormData();
  for (let i = 0, n = 1 + Math.floor(random() * 8); i < n; i++)
    form8.append("image", new Blob([all[Math.floor(random() * all.length)]]), `i${i}`);
  return { kind: "good-multipart", init: { method: "POST", body: form8 } };
}

function badRequest(random, bases) {
  for (;;) {
    const c = hostileRequest(random, bases, values.strict);
    if (values.strict || !KNOWN_FAILING.has(c.kind)) {
      const headers = c.contentType === null ? {} : { "content-type": c.contentType };
      return { kind: c.kind, query: c.query ?? "", init: { method: "POST", headers, body: c.body } };
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;

async function soak(url, inspector) {
  const random = mulberry32(seed);
  const bases = samples();
  const latencies = { good: [], bad: [] };
  const statuses = {};
  const failures = [];
  const heap = [];
  let sent = 0;
  let done = 0;
  let nextSample = 0;
  let sampling = false;
  const deadline = Date.now() + maxSeconds * 1000;

  async function sample() {
    await inspector.collectGarbage();
    const h = await inspector.heapUsage();
    const ready = await (await fetch(`${url}/readyz`)).json();
    heap.push({
      after: done,
      usedSize: h.usedSize,
      backingStorageSize: h.backingStorageSize,
      live: h.usedSize + h.backingStorageSize,
      wasm: ready.memory?.model_wasm_bytes ?? 0,
    });
    log(
      `${String(done).padStart(6)} requests: JS heap ${mb(h.usedSize)}, ArrayBuffers ${mb(h.backingStorageSize)}, model wasm ${mb(ready.memory?.model_wasm_bytes ?? 0)}, failures ${failures.length}`,
    );
  }

  async function worker() {
    while (sent < total && Date.now() < deadline) {
      sent++;
      const good = random() < 0.5;
      const r = good ? goodRequest(random, bases) : badRequest(random, bases);
      const started = performance.now();
      let status;
      try {
        const response = await fetch(`${url}/v1/classify${r.query ?? ""}`, { ...r.init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
        await response.arrayBuffer();
        status = response.status;
      } catch (error) {
        status = error.name === "TimeoutError" ? "timeout" : "dropped";
      }
      (good ? latencies.good : latencies.bad).push(performance.now() - started);
      statuses[status] = (statuses[status] ?? 0) + 1;
      const ok = good ? status === 200 : typeof status === "number" && status < 500;
      if (!ok) failures.push({ n: sent, kind: r.kind, status });
      done++;
      // One worker samples while the others keep the traffic going (their requests also run the forced GC).
      if (done >= nextSample && !sampling) {
        nextSample += sampleEvery;
        sampling = true;
        await sample().finally(() => (sampling = false));
      }
    }
  }

  await Promise.all(Array.from({ length: concurrency }, worker));
  await sample(); // after the last request
  return { latencies, statuses, failures, heap, sent: done };
}

async function main() {
  const packageDir = values.model ? resolve(values.model) : findDefaultPackage(join(root, "model"));
  await assertPortFree(port, "127.0.0.1");
  await assertPortFree(inspectorPort, "127.0.0.1");
  log(`seeding the local bucket with ${packageDir} ...`);
  const { id } = await seedLocalBucket(root, stateDir, packageDir);
  log(`starting wrangler dev on 127.0.0.1:${port}, inspector on ${inspectorPort} ...`);
  const dev = startWranglerDev({
    cwd: root,
    port,
    persistTo: stateDir,
    inspectorPort,
    stdio: "pipe",
    vars: { POINTER_CHECK_SECONDS: "3600", API_KEYS: "" },
    unlimited: true,
  });
  process.on("SIGINT", () => void dev.stop().then(() => process.exit(130)));
  try {
    await dev.waitFor("/readyz", 180_000);
    const inspector = await connectInspector({ port: inspectorPort, nudge: () => fetch(`${dev.url}/healthz`).then((r) => r.text()) });
    try {
      log(`sending ${total} requests, ${concurrency} at once, to ${id} ...`);
      const started = Date.now();
      const result = await soak(dev.url, inspector);
      return { model: id, seconds: (Date.now() - started) / 1000, ...result };
    } finally {
      inspector.close();
    }
  } finally {
    await dev.stop();
  }
}

const r = await main().catch((error) => {
  console.error(`soak: ${error.stack ?? error}`);
  process.exit(1);
});
const quarter = Math.max(1, Math.floor(r.heap.length / 4));
const first = median(r.heap.slice(0, quarter).map((s) => s.live));
const last = median(r.heap.slice(-quarter).map((s) => s.live));
const max = Math.max(...r.heap.map((s) => s.live));
const flat = last - first <= FLAT_TOLERANCE_BYTES;
const all = [...r.latencies.good, ...r.latencies.bad];
const summary = {
  model: r.model,
  requests: r.sent,
  seconds: r.seconds,
  concurrency,
  seed,
  statuses: r.statuses,
  failures: r.failures.length,
  failure_examples: r.failures.slice(0, 20),
  heap_live_first_quarter_median_bytes: first,
  heap_live_last_quarter_median_bytes: last,
  heap_live_max_bytes: max,
  heap_samples: r.heap,
  model_wasm_first_bytes: r.heap[0]?.wasm,
  model_wasm_last_bytes: r.heap.at(-1)?.wasm,
  flat,
  latency_ms: {
    all: { p50: percentile(all, 50), p99: percentile(all, 99) },
    good: { p50: percentile(r.latencies.good, 50), p99: percentile(r.latencies.good, 99) },
    hostile: { p50: percentile(r.latencies.bad, 50), p99: percentile(r.latencies.bad, 99) },
  },
};
if (values.json) {
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} else {
  const ms = (x) => `${x.toFixed(0)} ms`;
  log("");
  log(`${r.sent} requests to ${r.model} in ${r.seconds.toFixed(0)} s, ${concurrency} at once (seed ${seed})`);
  log(
    `statuses: ${Object.entries(r.statuses)
      .map(([k, v]) => `${k} x${v}`)
      .join(", ")}`,
  );
  log(
    `failures: ${r.failures.length}${
      r.failures.length
        ? `: ${r.failures
            .slice(0, 10)
            .map((f) => `#${f.n} ${f.kind} ${f.status}`)
            .join(", ")}`
        : ""
    }`,
  );
  log(
    `live heap (JS + ArrayBuffers, after GC), ${r.heap.length} samples: first quarter median ${mb(first)}, last quarter median ${mb(last)}, max ${mb(max)}: ${flat ? "flat" : "GREW"}`,
  );
  log(`model wasm: ${mb(summary.model_wasm_first_bytes)} first, ${mb(summary.model_wasm_last_bytes)} last`);
  log(
    `latency: all p50 ${ms(summary.latency_ms.all.p50)} p99 ${ms(summary.latency_ms.all.p99)}; good p50 ${ms(summary.latency_ms.good.p50)} p99 ${ms(summary.latency_ms.good.p99)}; hostile p50 ${ms(summary.latency_ms.hostile.p50)} p99 ${ms(summary.latency_ms.hostile.p99)}`,
  );
}
process.exit(r.failures.length || !flat ? 1 : 0);
