#!/usr/bin/env node
/**
 * Usage: npm run bench:upload [-- --json] [--rounds 7] [--mbit 32] [--port 8820] [--inspector-port 9240]
 *   (`npm run bench:upload -- --help` lists the options)
 *
 * Two things a client feels, measured in workerd under `wrangler dev` with AlexNet-224 loaded (random weights,
 * bench/.packages):
 *   1. Decode while uploading: a 12 MP phone JPEG (bench/.inputs/stream-phone-12mp.jpg) is written to a socket
 *      at a steady --mbit Mbit/s; the figure is the time from the last byte written to the answer's headers,
 *      beside the Worker's own inference time for that request (its Server-Timing header: the local clock
 *      advances during compute). The goal: answer - last byte <= inference + 25 ms. The same file sent at
 *      once is timed too, for the whole decode's cost.
 *   2. Nothing blocks the isolate for long: while the heaviest accepted inputs are sent at full speed (the
 *      24 MP progressive 4:4:4 JPEG, the 50 MP baseline JPEG and PNG, the 100-scan progressive JPEG, the PNG of
 *      16,384 IDATs), /healthz is asked every 20 ms; the figure is its slowest answer per input. The goal: <= 1 s.
 * Rounds are interleaved; medians and spreads (min-max) are reported. Exits 1 if a request fails.
 */
import { request as httpRequest } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBenchPackage, seedLocalBucket } from "./bench-package.mjs";
import { ensureStreamInputs } from "./stream-inputs.mjs";
import { parseCli, usageError } from "../scripts/lib/cli.mjs";
import { assertPortFree, startWranglerDev } from "../scripts/lib/wrangler-dev.mjs";

const spec = {
  name: "bench:upload",
  summary:
    "Times the answer after a paced upload's last byte, and /healthz while the heaviest accepted inputs decode, in wrangler dev with AlexNet-224.",
  options: {
    json: { type: "boolean", default: false, help: "Print one JSON object on stdout (progress goes to stderr)." },
    rounds: { type: "string", default: "7", value: "N", help: "Repetitions of each measurement (interleaved)." },
    mbit: { type: "string", default: "32", value: "N", help: "The paced upload's rate in Mbit/s." },
    port: { type: "string", default: "8820", value: "N", help: "wrangler dev's HTTP port on 127.0.0.1." },
    "inspector-port": { type: "string", default: "9240", value: "N", help: "The isolate's V8 inspector port (unused, kept off 9229)." },
  },
};
const { values } = parseCli(spec);
const rounds = Number(values.rounds);
const mbit = Number(values.mbit);
if (!Number.isInteger(rounds) || rounds < 1) usageError(spec, `--rounds must be a positive integer, got ${values.rounds}`);
if (!(mbit > 0)) usageError(spec, `--mbit must be a positive number, got ${values.mbit}`);
const port = Number(values.port);
const json = values.json;
const log = (...m) => (json ? process.stderr : process.stdout).write(`${m.join(" ")}\n`);

const root = new URL("..", import.meta.url).pathname;
const inputsDir = join(root, "bench/.inputs");
const stateDir = join(root, "bench/.state/upload");
const file = (name) => readFileSync(join(inputsDir, name));

/**
 * POSTs `bytes` over one socket, writing 16 KiB pieces on a schedule of `bytesPerSecond` (Infinity: at once).
 * Resolves with the ms from the last byte handed to the socket to the response's headers, the status and the
 * Server-Timing header.
 */
function post(url, type, bytes, bytesPerSecond) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/v1/classify`, { method: "POST", headers: { "content-type": type, "content-length": bytes.length } });
    let lastByteAt = 0;
    req.on("response", (res) => {
      const answeredAt = performance.now();
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () =>
        resolve({ status: res.statusCode, afterLastMs: answeredAt - lastByteAt, timing: res.headers["server-timing"] ?? "", body }),
      );
    });
    req.on("error", reject);
    const piece = 16 * 1024;
    const started = performance.now();
    let at = 0;
    const next = () => {
      while (at < bytes.length) {
        const due = started + (at / bytesPerSecond) * 1000;
        const wait = due - performance.now();
        if (wait > 1) return void setTimeout(next, wait);
        const end = Math.min(bytes.length, at + piece);
        req.write(bytes.subarray(at, end));
        at = end;
      }
      lastByteAt = performance.now();
      req.end();
    };
    next();
  });
}

/** A Server-Timing metric's duration in ms (decode, preprocess, inference), or NaN. */
const metric = (header, name) => Number(new RegExp(`${name};dur=([\\d.]+)`).exec(header)?.[1] ?? Number.NaN);

/** Asks /healthz every 20 ms until `done` settles; resolves with the slowest answer's ms. */
async function probeHealth(url, done) {
  let slowest = 0;
  let finished = false;
  done.finally(() => (finished = true));
  while (!finished) {
    const t = performance.now();
    const r = await fetch(`${url}/healthz`);
    await r.text();
    slowest = Math.max(slowest, performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
  return slowest;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = (xs) => ({ median: +median(xs).toFixed(1), min: +Math.min(...xs).toFixed(1), max: +Math.max(...xs).toFixed(1) });

async function measure(url) {
  const phone = file("stream-phone-12mp.jpg");
  const heavy = [
    ["progressive-24mp-444", "image/jpeg", "stream-progressive-444.jpg"],
    ["baseline-50mp", "image/jpeg", "stream-baseline-50mp.jpg"],
    ["png-50mp", "image/png", "stream-png-50mp.png"],
    ["bomb-100-scans", "image/jpeg", "bomb-scans.jpg"],
    ["bomb-16384-idat", "image/png", "bomb-idat.png"],
  ].map(([name, type, f]) => ({ name, type, bytes: file(f) }));
  const paced = { afterLast: [], inference: [], margin: [], decode: [] };
  const atOnce = { afterLast: [], decode: [] };
  const health = Object.fromEntries(heavy.map((h) => [h.name, []]));
  const failures = [];
  const check = (what, r) => {
    if (r.status !== 200) failures.push(`${what}: ${r.status} ${r.body.slice(0, 200)}`);
    return r;
  };
  await post(url, "image/jpeg", phone, Number.POSITIVE_INFINITY); // warm: the model loaded, code compiled
  for (let round = 0; round < rounds; round++) {
    const p = check("paced phone JPEG", await post(url, "image/jpeg", phone, (mbit * 1e6) / 8));
    paced.afterLast.push(p.afterLastMs);
    paced.inference.push(metric(p.timing, "inference"));
    paced.decode.push(metric(p.timing, "decode"));
    paced.margin.push(p.afterLastMs - metric(p.timing, "inference"));
    const q = check("phone JPEG at once", await post(url, "image/jpeg", phone, Number.POSITIVE_INFINITY));
    atOnce.afterLast.push(q.afterLastMs);
    atOnce.decode.push(metric(q.timing, "decode"));
    for (const h of heavy) {
      const sent = post(url, h.type, h.bytes, Number.POSITIVE_INFINITY);
      const slowest = await probeHealth(url, sent);
      check(h.name, await sent);
      health[h.name].push(slowest);
    }
    log(
      `round ${round + 1}/${rounds}: paced answer ${p.afterLastMs.toFixed(1)} ms after the last byte (inference ${metric(p.timing, "inference")} ms); ` +
        `slowest /healthz ${Object.entries(health)
          .map(([n, xs]) => `${n} ${xs.at(-1).toFixed(0)}`)
          .join(", ")} ms`,
    );
  }
  return {
    rounds,
    mbit,
    file_bytes: phone.length,
    paced_after_last_byte_ms: summary(paced.afterLast),
    paced_inference_ms: summary(paced.inference),
    paced_after_last_byte_minus_inference_ms: summary(paced.margin),
    paced_decode_ms: summary(paced.decode),
    at_once_after_last_byte_ms: summary(atOnce.afterLast),
    at_once_decode_ms: summary(atOnce.decode),
    healthz_slowest_ms: Object.fromEntries(Object.entries(health).map(([n, xs]) => [n, summary(xs)])),
    failures,
  };
}

async function main() {
  ensureStreamInputs(root, inputsDir, log, json ? process.stderr : "inherit");
  const packageDir = ensureBenchPackage(root, log);
  await assertPortFree(port, "127.0.0.1");
  const { id } = await seedLocalBucket(root, stateDir, packageDir);
  log(`starting wrangler dev on 127.0.0.1:${port} with ${id} ...`);
  const dev = startWranglerDev({
    cwd: root,
    port,
    persistTo: stateDir,
    inspectorPort: Number(values["inspector-port"]),
    stdio: "pipe",
    vars: { POINTER_CHECK_SECONDS: "3600", API_KEYS: "" },
    unlimited: true,
  });
  process.on("SIGINT", () => void dev.stop().then(() => process.exit(130)));
  try {
    await dev.waitFor("/healthz", 120_000);
    return { model: id, ...(await measure(dev.url)) };
  } finally {
    await dev.stop();
  }
}

const result = await main();
if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  log(`12 MP phone JPEG (${(result.file_bytes / 1e6).toFixed(1)} MB) at ${mbit} Mbit/s, ${rounds} rounds (median, min-max):`);
  const f = (s) => `${s.median} ms (${s.min}-${s.max})`;
  log(`  answer after the last byte   ${f(result.paced_after_last_byte_ms)}`);
  log(`  of which inference           ${f(result.paced_inference_ms)}`);
  log(`  answer - last byte - infer.  ${f(result.paced_after_last_byte_minus_inference_ms)}   (goal <= 25 ms)`);
  log(`  sent at once: after last byte ${f(result.at_once_after_last_byte_ms)}, decode ${f(result.at_once_decode_ms)}`);
  log("slowest /healthz while each heavy input decodes (goal <= 1000 ms):");
  for (const [n, s] of Object.entries(result.healthz_slowest_ms)) log(`  ${n.padEnd(20)} ${f(s)}`);
}
if (result.failures.length) {
  log(`failed requests:\n  ${result.failures.join("\n  ")}`);
  process.exit(1);
}
