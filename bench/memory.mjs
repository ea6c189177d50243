#!/usr/bin/env node
/**
 * Usage: npm run bench:memory [-- --json] [--port 8810] [--inspector-port 9230] [--only NAME,...]
 *   (`npm run bench:memory -- --help` lists the options)
 *
 * Measures the Worker isolate's memory, for real, in workerd under `wrangler dev`, with the full AlexNet-224
 * (1000 classes, random weights: bench/.packages, written by scripts/make_bench_package.py) loaded:
 *   1. runtime baseline: code loaded, no model, after a forced GC (sets RUNTIME_MARGIN_BYTES in src/config.ts);
 *   2. idle with the model loaded;
 *   3. every input form at its limit (src/config.ts), one request at a time and 8 at once: raw JPEG (largest
 *      baseline, largest progressive, 65000x240), PNG at its pixel limit, a hostile PNG (1x1 IHDR, then an
 *      8000x8000 one), lossy, lossless and alpha WebP, Workers AI's JSON byte array of a 5 MB photo, base64
 *      JSON, a multipart batch of 8; then the streaming pipeline's forms beyond the 4 MiB gathered limit
 *      (bench/make_stream_inputs.py): a 12 MP phone JPEG, a 50 MP baseline JPEG, 12 MP progressive 4:2:0 and
 *      24 MP progressive 4:4:4 JPEGs, a 50 MP PNG, base64 JSON of the 50 MP JPEG, a form of 4 phone photos, and
 *      the structure bombs at the largest counts accepted (100 scans, 16,384 IDATs).
 * Before each phase a forced GC (HeapProfiler.collectGarbage, nudged by a /healthz); during it the inspector's
 * Runtime.getHeapUsage is sampled every 25 ms and /readyz's `memory` (wasm memories, ledger) every 100 ms.
 * A row's total = peak(usedSize + backingStorageSize) + the model's wasm memories + the largest decoder wasm
 * memory during the phase (a decode is synchronous, so one decoder memory at most is live at once). The limit is
 * 128 MB = 128e6 bytes per isolate (Cloudflare Workers limits).
 * The images are generated once into bench/.inputs by bench/make_memory_inputs.py (/usr/bin/python3 + Pillow).
 * Exits 1 if a phase's total is over 128 MB or a request got a 5xx other than 503 `overloaded`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  MAX_IMAGE_BYTES,
  MAX_STREAMED_IMAGE_BYTES,
  MAX_JPEG_PIXELS,
  MAX_PNG_PIXELS,
  MAX_PROGRESSIVE_JPEG_PIXELS,
  MAX_WEBP_ALPHA_PIXELS,
  MAX_WEBP_LOSSLESS_PIXELS,
  MAX_WEBP_PIXELS,
} from "../src/config.ts";
import { MAX_JPEG_SCANS } from "../src/image/jpeg-markers.ts";
import { MAX_IDAT_CHUNKS } from "../src/image/png-chunks.ts";
import { ensureBenchPackage, seedLocalBucket } from "./bench-package.mjs";
import { ensureStreamInputs } from "./stream-inputs.mjs";
import { connectInspector, startHeapSampler } from "../scripts/lib/inspector.mjs";
import { parseCli, usageError } from "../scripts/lib/cli.mjs";
import { assertPortFree, startWranglerDev } from "../scripts/lib/wrangler-dev.mjs";

const ISOLATE_LIMIT_BYTES = 128e6;

const spec = {
  name: "bench:memory",
  summary:
    "Measures the Worker isolate's memory in workerd under wrangler dev, with the full AlexNet-224 loaded, for every input form at its limit.",
  options: {
    json: { type: "boolean", default: false, help: "Print one JSON object on stdout (progress goes to stderr)." },
    port: { type: "string", default: "8810", value: "N", help: "wrangler dev's HTTP port on 127.0.0.1." },
    "inspector-port": { type: "string", default: "9230", value: "N", help: "The isolate's V8 inspector port." },
    only: {
      type: "string",
      value: "NAME,...",
      help: "Run only these phases (comma-separated names from the table), after the baseline and idle rows.",
    },
  },
};
const { values } = parseCli(spec);
for (const name of ["port", "inspector-port"]) {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) usageError(spec, `--${name} must be a port number, got ${values[name]}`);
}
const json = values.json;
const port = Number(values.port);
const inspectorPort = Number(values["inspector-port"]);
const log = (...m) => (json ? process.stderr : process.stdout).write(`${m.join(" ")}\n`);

const root = new URL("..", import.meta.url).pathname;
const inputsDir = join(root, "bench/.inputs");
const stateDir = join(root, "bench/.state/memory");

function ensureInputs() {
  if (existsSync(join(inputsDir, "webp-alpha-max.webp"))) return; // the last one written
  log("generating the benchmark images into bench/.inputs (once, ~30 s) ...");
  const args = ["bench/make_memory_inputs.py", inputsDir];
  args.push(
    "--baseline-pixels",
    String(MAX_JPEG_PIXELS),
    "--progressive-pixels",
    String(MAX_PROGRESSIVE_JPEG_PIXELS),
    "--png-pixels",
    String(MAX_PNG_PIXELS),
    "--image-bytes",
    String(MAX_IMAGE_BYTES),
  );
  args.push(
    "--webp-pixels",
    String(MAX_WEBP_PIXELS),
    "--webp-lossless-pixels",
    String(MAX_WEBP_LOSSLESS_PIXELS),
    "--webp-alpha-pixels",
    String(MAX_WEBP_ALPHA_PIXELS),
  );
  execFileSync("sh", ["scripts/python.sh", ...args], { cwd: root, stdio: ["ignore", json ? process.stderr : "inherit", "inherit"] });
}

const file = (name) => readFileSync(join(inputsDir, name));

/** Each phase: a name, a note, and a function returning a fresh request init (bodies are reused, not rebuilt). */
function phases() {
  const raw = (type, bytes) => () => ({ method: "POST", headers: { "content-type": type }, body: bytes });
  const photo = file("photo-5mb.jpg");
  const arrayBody = JSON.stringify({ image: [...photo] });
  const base64Body = JSON.stringify({ image: file("baseline-max.jpg").toString("base64") });
  const progressive = file("progressive-max.jpg");
  // A full batch within the multipart body limit: 8 phone-sized progressive JPEGs (the 24 MP ones are 12 MB each).
  const phoneProgressive = file("stream-progressive-12mp.jpg");
  const multipart = () => {
    const form = new FormData();
    for (let i = 0; i < 8; i++) form.append("image", new Blob([phoneProgressive], { type: "image/jpeg" }), `p${i}.jpg`);
    return { method: "POST", body: form };
  };
  const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
  const b = file("baseline-max.jpg");
  const p = file("png-max.png");
  const w = file("wide.jpg");
  const hostile = file("png-double-ihdr.png");
  const [wl, wll, wa] = ["webp-max.webp", "webp-lossless-max.webp", "webp-alpha-max.webp"].map(file);
  return [
    { name: "jpeg-baseline", note: `largest baseline JPEG, ${mb(b.length)}`, init: raw("image/jpeg", b) },
    // These three files can be over the raw body limit (a noise photo compresses badly): refused, or cancelled
    // past the read-away limit, which a client sees as a reset; the streamed rows below cover the same forms
    // within the limits.
    {
      name: "jpeg-progressive",
      note: `largest progressive JPEG, ${mb(progressive.length)}`,
      init: raw("image/jpeg", progressive),
      refusal: progressive.length > MAX_STREAMED_IMAGE_BYTES,
    },
    {
      name: "jpeg-wide",
      note: `65000x240 baseline JPEG, ${mb(w.length)}`,
      init: raw("image/jpeg", w),
      refusal: w.length > MAX_STREAMED_IMAGE_BYTES,
    },
    {
      name: "png",
      note: `PNG at its pixel limit, ${mb(p.length)}`,
      init: raw("image/png", p),
      refusal: p.length > MAX_STREAMED_IMAGE_BYTES,
    },
    { name: "png-double-ihdr", note: "hostile PNG: IHDR 1x1, then 8000x8000", init: raw("image/png", hostile), concurrency: [1] },
    {
      name: "json-array",
      note: `{"image":[...]} of a ${mb(photo.length)} photo, body ${mb(arrayBody.length)}`,
      init: raw("application/json", arrayBody),
    },
    { name: "json-base64", note: `{"image":"<base64>"}, body ${mb(base64Body.length)}`, init: raw("application/json", base64Body) },
    { name: "webp-lossy", note: `lossy WebP at its pixel limit, ${mb(wl.length)}`, init: raw("image/webp", wl) },
    { name: "webp-lossless", note: `lossless WebP at its pixel limit, ${mb(wll.length)}`, init: raw("image/webp", wll) },
    { name: "webp-alpha", note: `lossy WebP with alpha at its pixel limit, ${mb(wa.length)}`, init: raw("image/webp", wa) },
    { name: "multipart-8", note: `8 12 MP progressive JPEGs in one form, ${mb(8 * phoneProgressive.length)}`, init: multipart },
    ...streamedPhases(raw, mb),
  ];
}

/** The streaming pipeline's forms: files decoded as they arrive, beyond the gathered 4 MiB limit. */
function streamedPhases(raw, mb) {
  const [big, phone, prog, prog444, png, scans, idat] = [
    "stream-baseline-50mp.jpg",
    "stream-phone-12mp.jpg",
    "stream-progressive-12mp.jpg",
    "stream-progressive-444.jpg",
    "stream-png-50mp.png",
    "bomb-scans.jpg",
    "bomb-idat.png",
  ].map(file);
  const base64Body = JSON.stringify({ image: big.toString("base64") });
  const oversize = new Uint8Array(95e6);
  oversize.set(big);
  const phones = () => {
    const form = new FormData();
    for (let i = 0; i < 4; i++) form.append("image", new Blob([phone], { type: "image/jpeg" }), `phone${i}.jpg`);
    return { method: "POST", body: form };
  };
  return [
    { name: "s-jpeg-phone", note: `12 MP phone JPEG, streamed, ${mb(phone.length)}`, init: raw("image/jpeg", phone) },
    { name: "s-jpeg-50mp", note: `50 MP baseline JPEG, streamed, ${mb(big.length)}`, init: raw("image/jpeg", big) },
    { name: "s-jpeg-prog-12mp", note: `12 MP progressive 4:2:0, ${mb(prog.length)}`, init: raw("image/jpeg", prog) },
    { name: "s-jpeg-prog-444", note: `24 MP progressive 4:4:4, ${mb(prog444.length)}`, init: raw("image/jpeg", prog444) },
    { name: "s-png-50mp", note: `50 MP screenshot PNG, streamed, ${mb(png.length)}`, init: raw("image/png", png) },
    {
      name: "s-json-base64-50mp",
      note: `base64 JSON of the 50 MP JPEG, body ${mb(base64Body.length)}`,
      init: raw("application/json", base64Body),
    },
    { name: "s-multipart-4-phones", note: `4 phone JPEGs in one form, ${mb(4 * phone.length)}`, init: phones },
    {
      name: "bomb-scans",
      note: `progressive JPEG of ${MAX_JPEG_SCANS} scans (the most accepted), ${mb(scans.length)}`,
      init: raw("image/jpeg", scans),
    },
    {
      name: "oversize-95mb",
      note: "a 95 MB raw body, over every limit: refused and cancelled unread (the client sees a reset)",
      init: raw("image/jpeg", oversize),
      refusal: true,
    },
    {
      name: "bomb-idat",
      note: `PNG of ${MAX_IDAT_CHUNKS} IDAT chunks (the most accepted), ${mb(idat.length)}`,
      init: raw("image/png", idat),
    },
  ];
}

async function main() {
  ensureInputs();
  ensureStreamInputs(root, inputsDir, log, json ? process.stderr : "inherit");
  const packageDir = ensureBenchPackage(root, log);
  await assertPortFree(port, "127.0.0.1");
  await assertPortFree(inspectorPort, "127.0.0.1");
  log("seeding the local bucket (skips files already there) ...");
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
  const stop = () => dev.stop();
  process.on("SIGINT", () => void stop().then(() => process.exit(130)));
  try {
    await dev.waitFor("/healthz", 120_000);
    const inspector = await connectInspector({ port: inspectorPort, nudge: () => fetch(`${dev.url}/healthz`).then((r) => r.text()) });
    try {
      return await measure(dev, inspector, id);
    } finally {
      inspector.close();
    }
  } finally {
    await stop();
  }
}

async function readyMemory(url) {
  const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(120_000) });
  if (!response.ok) throw new Error(`/readyz: ${response.status} ${await response.text()}`);
  return (await response.json()).memory;
}

async function measure(dev, inspector, modelId) {
  const rows = [];
  // 1. The runtime alone: the bundle's code evaluated (the /healthz above), no model, after a GC.
  await inspector.collectGarbage();
  const runtime = await inspector.heapUsage();
  rows.push({
    name: "runtime",
    note: "code loaded, no model, after GC",
    concurrency: 0,
    statuses: {},
    usedSize: runtime.usedSize,
    backingStorageSize: runtime.backingStorageSize,
    wasm: 0,
    total: runtime.usedSize + runtime.backingStorageSize,
    reserved: 0,
    ms: 0,
  });
  log(
    `runtime baseline: JS heap ${mb(runtime.usedSize)} used of ${mb(runtime.totalSize)} committed, ArrayBuffers ${mb(runtime.backingStorageSize)}`,
  );

  log(`loading ${modelId} (/readyz) ...`);
  await readyMemory(dev.url);
  const only = values.only?.split(",");
  const list = [
    { name: "idle", note: "model loaded, no request", init: null, concurrency: [0] },
    ...phases().filter((p) => !only || only.includes(p.name)),
  ];
  for (const phase of list) {
    for (const concurrency of phase.concurrency ?? (phase.paced ? [1] : [1, 8])) {
      try {
        const row = phase.paced ? await runPacedPhase(dev.url, inspector, phase) : await runPhase(dev.url, inspector, phase, concurrency);
        rows.push(row);
        log(formatRow(row));
      } catch (error) {
        // The isolate stopped answering (a long synchronous stretch, or it died): record it and go on.
        const row = {
          name: phase.name,
          note: phase.note,
          concurrency,
          statuses: { error: 1 },
          errors: { error: error.message },
          usedSize: 0,
          backingStorageSize: 0,
          wasm: 0,
          total: 0,
          reserved: 0,
          ms: 0,
        };
        rows.push(row);
        log(`${phase.name} x${concurrency}: ${error.message}`);
      }
    }
  }
  return {
    model: modelId,
    limit_bytes: ISOLATE_LIMIT_BYTES,
    runtime_baseline_bytes: runtime.usedSize + runtime.backingStorageSize,
    runtime_heap_committed_bytes: runtime.totalSize,
    rows,
  };
}

async function runPhase(url, inspector, phase, concurrency) {
  await inspector.collectGarbage();
  const sampler = startHeapSampler(inspector);
  let reserved = 0;
  let decoderPeak = 0;
  let polling = true;
  let memory = await readyMemory(url); // also starts /readyz's decoder peak over
  const note = (m) => {
    reserved = Math.max(reserved, m.reserved_bytes);
    decoderPeak = Math.max(decoderPeak, m.decoder_wasm_peak_bytes);
  };
  const poller = (async () => {
    while (polling) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        note(await readyMemory(url));
      } catch {
        // /readyz waits behind the isolate's work; a slow answer is just a missed sample.
      }
    }
  })();
  const started = performance.now();
  const statuses = {};
  const errors = {};
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      let key;
      try {
        const response = await fetch(`${url}/v1/classify`, { ...phase.init(), signal: AbortSignal.timeout(300_000) });
        const text = await response.text();
        key = String(response.status);
        if (!response.ok)
          errors[key] = (() => {
            try {
              return JSON.parse(text).error.code;
            } catch {
              return text.slice(0, 80);
            }
          })();
      } catch (error) {
        // "fetch failed" carries the socket's reason in its cause (e.g. UND_ERR_SOCKET: the other side closed).
        key = error.name === "TimeoutError" ? "timeout" : "fetch-failed";
        errors[key] = error.cause?.code ?? error.cause?.message ?? error.message;
      }
      statuses[key] = (statuses[key] ?? 0) + 1;
    }),
  );
  const ms = performance.now() - started;
  polling = false;
  await poller;
  const peak = await sampler.stop();
  memory = await readyMemory(url);
  note(memory);
  const wasm = memory.model_wasm_bytes + decoderPeak;
  return {
    name: phase.name,
    note: phase.note,
    refusal: phase.refusal ?? false,
    concurrency,
    statuses,
    errors,
    usedSize: peak.usedSize,
    backingStorageSize: peak.backingStorageSize,
    wasm,
    total: peak.sum + wasm,
    reserved,
    samples: peak.samples,
    ms: Math.round(ms),
  };
}

/**
 * One request whose body streams at a steady pace while the bench forces full GCs and reads the heap after
 * each: the largest post-GC reading is the live memory mid-stream (decoder state, rows, buffers in flight).
 * The inspector is served between the isolate's tasks, so each GC lands between two chunks' work.
 */
async function runPacedPhase(url, inspector, phase) {
  await inspector.collectGarbage();
  const before = await inspector.heapUsage();
  let decoderPeak = 0;
  const chunkBytes = 64 * 1024;
  let sent = 0;
  const body = new ReadableStream({
    async pull(controller) {
      if (sent >= phase.body.length) return controller.close();
      await new Promise((r) => setTimeout(r, 4));
      controller.enqueue(phase.body.subarray(sent, sent + chunkBytes));
      sent += chunkBytes;
    },
  });
  const started = performance.now();
  let done = false;
  const request = fetch(`${url}/v1/classify`, {
    method: "POST",
    headers: { "content-type": phase.type, "content-length": String(phase.body.length) },
    body,
    duplex: "half",
    signal: AbortSignal.timeout(300_000),
  }).then(async (response) => {
    const text = await response.text();
    done = true;
    return { status: response.status, text };
  });
  let live = { usedSize: 0, backingStorageSize: 0 };
  let gcs = 0;
  while (!done) {
    await inspector.collectGarbage();
    const h = await inspector.heapUsage();
    // Only readings taken while the body was still arriving count: after it, the answer is being built.
    if (!done && sent < phase.body.length) {
      if (h.usedSize + h.backingStorageSize > live.usedSize + live.backingStorageSize) live = h;
      gcs++;
    }
    decoderPeak = Math.max(decoderPeak, (await readyMemory(url)).decoder_wasm_peak_bytes);
  }
  const { status, text } = await request;
  const memory = await readyMemory(url);
  decoderPeak = Math.max(decoderPeak, memory.decoder_wasm_peak_bytes);
  const wasm = memory.model_wasm_bytes + decoderPeak;
  const errors = status === 200 ? {} : { [status]: text.slice(0, 80) };
  return {
    name: phase.name,
    note: `${phase.note} (${gcs} GCs during the upload)`,
    concurrency: 1,
    statuses: { [status]: 1 },
    errors,
    usedSize: live.usedSize,
    backingStorageSize: live.backingStorageSize,
    wasm,
    total: live.usedSize + live.backingStorageSize + wasm,
    live_beyond_idle_bytes: live.usedSize + live.backingStorageSize + decoderPeak - (before.usedSize + before.backingStorageSize),
    reserved: 0,
    ms: Math.round(performance.now() - started),
  };
}

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
const statusText = (s) =>
  Object.entries(s)
    .map(([k, v]) => `${v}x${k}`)
    .join(" ") || "-";
function formatRow(r) {
  return [
    r.name.padEnd(17),
    String(r.concurrency).padStart(2),
    statusText(r.statuses).padEnd(14),
    mb(r.usedSize).padStart(9),
    mb(r.backingStorageSize).padStart(9),
    mb(r.wasm).padStart(9),
    mb(r.total).padStart(9),
    r.total < ISOLATE_LIMIT_BYTES ? "ok  " : "OVER",
    mb(r.reserved).padStart(9),
    `${r.ms} ms`,
  ].join("  ");
}

const result = await main().catch((error) => {
  console.error(`bench:memory: ${error.stack ?? error}`);
  process.exit(1);
});
// A refused upload too large to read away is cancelled; wrangler dev's proxy answers some of those clients
// with its own 500 "Network connection lost" instead of passing the reset on (docs/platform-notes.md,
// "Malformed HTTP: who answers"): on a refusal row that is the expected outcome, not the Worker's 500.
const devProxyLost = (message) => typeof message === "string" && message.startsWith("Error: Network connection lost");
const failed = result.rows.filter(
  (r) =>
    r.total >= ISOLATE_LIMIT_BYTES ||
    Object.keys(r.statuses).some(
      (s) =>
        (s >= "500" && !(s === "503" && r.errors[s] === "overloaded") && !(s === "500" && r.refusal && devProxyLost(r.errors[s]))) ||
        ["timeout", "error"].includes(s) ||
        (s === "fetch-failed" && !r.refusal),
    ),
);
if (json) {
  process.stdout.write(`${JSON.stringify({ ...result, failed: failed.map((r) => `${r.name} x${r.concurrency}`) })}\n`);
} else {
  log("");
  log(
    `${"form".padEnd(17)}  ${"n".padStart(2)}  ${"statuses".padEnd(14)}  ${"JS used".padStart(9)}  ${"buffers".padStart(9)}  ${"wasm".padStart(9)}  ${"total".padStart(9)}  <128  ${"reserved".padStart(9)}  time`,
  );
  for (const row of result.rows) log(formatRow(row));
  log("");
  log(
    `model ${result.model}; limit ${mb(ISOLATE_LIMIT_BYTES)} per isolate; runtime baseline (JS heap + buffers, no model) ${mb(result.runtime_baseline_bytes)}, JS heap committed ${mb(result.runtime_heap_committed_bytes)}`,
  );
  for (const r of result.rows.filter((r) => Object.keys(r.errors ?? {}).length))
    log(`  ${r.name} x${r.concurrency}: errors ${JSON.stringify(r.errors)}`);
  log(failed.length ? `FAILED: ${failed.map((r) => `${r.name} x${r.concurrency}`).join(", ")}` : "every phase stayed under the limit");
}
process.exit(failed.length ? 1 : 0);
