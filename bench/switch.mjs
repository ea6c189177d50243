#!/usr/bin/env node
/**
 * Usage: npm run bench:switch [-- --budget-mib N] [--model DIR] [--concurrency 8] [--port N] [--inspector-port N]
 *                             [--seconds 150] [--max-requests 20000]
 *
 * A model switch under load, on loopback only: runs `wrangler dev` over a fresh local bucket (a temporary
 * directory, removed at the end), publishes the package in --model (default model/alexnet-fmnist-64-v8) with
 * the project's publish code (scripts/lib/publish.mjs, over scripts/lib/local-r2.mjs), then sends POST /v1/classify at --concurrency through
 * the publish of a copy of that package under a new id. Prints the failed requests (anything but 200), the
 * answers by model, any answer from the old model after the first from the new one, and latency p50/p99/max
 * before the publish, while it uploads, in the switch window (from the pointer write until the first answer
 * from the new model) and after it. The Worker re-reads the pointer every second (POINTER_CHECK_SECONDS=1).
 *
 * --budget-mib N runs the app with an isolate budget of N MiB (bench/switch-worker.ts): with room for one model
 * only, the switch frees the old model before loading the new one, the path a full 224x224 AlexNet takes under
 * the 128 MB limit.
 * `npm run bench:switch -- --help` lists the options.
 *
 * Exits non-zero if a request failed, an old answer came after the switch, or the switch was not seen.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { POINTER_KEY } from "../src/config.ts";
import { parseCli, usageError } from "../scripts/lib/cli.mjs";
import { readPackage } from "../scripts/lib/model-package.mjs";
import { publishPackage } from "../scripts/lib/publish.mjs";
import { freePort, startWranglerDev } from "../scripts/lib/wrangler-dev.mjs";
import { openLocalBucket } from "../scripts/lib/local-r2.mjs";
import { modelsBucketName } from "../scripts/lib/wrangler-r2.mjs";

const root = resolve(import.meta.dirname, "..");
/** Load before the publish starts, for the baseline latency. */
const BASELINE_MS = 5000;
/** Load after the first answer from the new model. */
const TAIL_MS = 5000;

const spec = {
  name: "bench:switch",
  summary:
    "Publishes a copy of a model package under a new id while wrangler dev answers POST /v1/classify under load, and reports failures and latency around the switch.",
  options: {
    "budget-mib": {
      type: "string",
      value: "N",
      help: "Run the app with an isolate budget of N MiB (bench/switch-worker.ts): with room for one model only, the switch frees the old model before loading the new one (default: the real Worker and its budget).",
    },
    model: { type: "string", value: "DIR", help: "The package to serve and copy (default: model/alexnet-fmnist-64-v8)." },
    concurrency: { type: "string", default: "8", value: "N", help: "Requests in flight at once." },
    port: { type: "string", value: "N", help: "wrangler dev's port on 127.0.0.1 (default: a free one)." },
    "inspector-port": { type: "string", value: "N", help: "wrangler dev's inspector port (default: a free one)." },
    seconds: { type: "string", default: "150", value: "N", help: "Stop the load after N seconds, whatever happened." },
    "max-requests": { type: "string", default: "20000", value: "N", help: "Stop the load after N requests." },
  },
  examples: ["npm run bench:switch", "npm run bench:switch -- --budget-mib 300"],
};
const { values } = parseCli(spec);
const number = (name) => {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n <= 0) usageError(spec, `--${name} must be a positive number, got ${values[name]}`);
  return n;
};
const concurrency = number("concurrency");
const deadlineMs = number("seconds") * 1000;
const maxRequests = number("max-requests");
const budgetMib = values["budget-mib"] === undefined ? undefined : number("budget-mib");
const fixedPort = values.port === undefined ? undefined : number("port");
const fixedInspectorPort = values["inspector-port"] === undefined ? undefined : number("inspector-port");
const log = (line) => console.log(`bench:switch: ${line}`);

/** A copy of the package under a new id: same weights, a manifest that names the copy. */
function copyPackage(dir, into) {
  const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
  const id = `${manifest.id}-copy`;
  const out = join(into, id);
  mkdirSync(out, { recursive: true });
  for (const file of [manifest.weights.file, manifest.samples?.file].filter(Boolean)) copyFileSync(join(dir, file), join(out, file));
  writeFileSync(join(out, "manifest.json"), `${JSON.stringify({ ...manifest, id }, null, 2)}\n`);
  return { oldId: manifest.id, newId: id, dir: out };
}

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);
function latency(requests) {
  const ms = requests.map((r) => r.end - r.start).sort((a, b) => a - b);
  const f = (x) => (Number.isNaN(x) ? "-" : x.toFixed(0));
  return `${String(requests.length).padStart(6)} requests  p50 ${f(quantile(ms, 0.5)).padStart(5)} ms  p99 ${f(quantile(ms, 0.99)).padStart(5)} ms  max ${f(ms.at(-1) ?? NaN).padStart(5)} ms`;
}

async function main() {
  const packageDir = values.model ? resolve(values.model) : join(root, "model/alexnet-fmnist-64-v8");
  await readPackage(packageDir); // a damaged package fails here, before anything starts
  const work = mkdtempSync(join(tmpdir(), "alexnet-switch-"));
  const persistTo = join(work, "state");
  const copy = copyPackage(packageDir, work);
  const port = fixedPort ?? (await freePort());
  const inspectorPort = fixedInspectorPort ?? (await freePort());
  const config = budgetMib ? join(root, "bench/wrangler.switch.toml") : undefined;
  const vars = { POINTER_CHECK_SECONDS: "1", ...(budgetMib ? { BENCH_BUDGET_MIB: String(budgetMib) } : {}) };
  log(
    `wrangler dev on 127.0.0.1:${port}${budgetMib ? `, isolate budget ${budgetMib} MiB` : ", the Worker's own budget"}; local bucket in ${work}`,
  );
  const dev = startWranglerDev({ cwd: root, port, persistTo, inspectorPort, stdio: "pipe", vars, config });
  let bucket;
  const stop = async () => {
    await bucket?.close();
    await dev.stop();
    rmSync(work, { recursive: true, force: true });
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => stop().then(() => process.exit(130)));
  try {
    bucket = openLocalBucket({ bucket: modelsBucketName(join(root, "wrangler.toml")), persistTo });
    log(`publishing ${copy.oldId}`);
    await publishPackage(bucket, packageDir, { log: () => {} });
    await dev.waitFor("/readyz", 180_000);
    log(`serving ${copy.oldId}; load at concurrency ${concurrency} for ${BASELINE_MS / 1000} s, then publishing ${copy.newId}`);
    const report = await loadThroughPublish(dev.url, bucket, copy);
    const events = dev
      .output()
      .split("\n")
      .filter((line) => /"event":"model_(switched|loaded|load_failed)"/.test(line))
      .map((line) => line.slice(line.indexOf("{")));
    print(report, copy, events);
    const ok = report.failed.length === 0 && report.oldAfterSwitch.length === 0 && report.firstNewEnd !== undefined;
    await stop();
    process.exit(ok ? 0 : 1);
  } catch (error) {
    await stop();
    throw error;
  }
}

async function loadThroughPublish(url, bucket, copy) {
  const image = readFileSync(join(root, "samples/fmnist/ankle-boot-0.png"));
  const requests = [];
  const began = performance.now();
  const marks = { publishStart: undefined, pointerAt: undefined, publishEnd: undefined, firstNewEnd: undefined };
  let publishing;
  let publishError;
  // The pointer write is the switch's start: time it as the put returns, not when publish logs it after a read-back.
  const timedBucket = {
    ...bucket,
    async put(key, value) {
      await bucket.put(key, value);
      if (key === POINTER_KEY) marks.pointerAt = performance.now();
    },
  };
  const finished = () => {
    const now = performance.now();
    if (now - began > deadlineMs || requests.length >= maxRequests) return true;
    return marks.firstNewEnd !== undefined && marks.publishEnd !== undefined && now - marks.firstNewEnd > TAIL_MS;
  };
  const worker = async () => {
    while (!finished()) {
      if (!publishing && performance.now() - began > BASELINE_MS) {
        marks.publishStart = performance.now();
        publishing = publishPackage(timedBucket, copy.dir, { log: () => {} })
          .catch((error) => (publishError = error))
          .finally(() => (marks.publishEnd = performance.now()));
      }
      const request = { start: performance.now() };
      try {
        const response = await fetch(`${url}/v1/classify`, {
          method: "POST",
          headers: { "content-type": "image/png" },
          body: image,
          signal: AbortSignal.timeout(60_000),
        });
        const text = await response.text();
        request.status = response.status;
        if (response.ok) request.model = JSON.parse(text).model;
        else request.error = text.slice(0, 200);
      } catch (error) {
        request.status = 0;
        request.error = error.message;
      }
      request.end = performance.now();
      if (request.model === copy.newId && marks.firstNewEnd === undefined) marks.firstNewEnd = request.end;
      requests.push(request);
      if (requests.length % 500 === 0) log(`${requests.length} requests, ${((performance.now() - began) / 1000).toFixed(0)} s`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await publishing;
  if (publishError) throw publishError;
  const { publishStart, pointerAt, firstNewEnd } = marks;
  const between = (from, to) => requests.filter((r) => r.start >= from && r.start < to);
  return {
    requests,
    ...marks,
    failed: requests.filter((r) => r.status !== 200),
    oldAfterSwitch: firstNewEnd === undefined ? [] : requests.filter((r) => r.start > firstNewEnd && r.model === copy.oldId),
    phases: {
      before: between(0, publishStart),
      uploading: between(publishStart, pointerAt ?? Infinity),
      switching: between(pointerAt ?? Infinity, firstNewEnd ?? Infinity),
      after: between(firstNewEnd ?? Infinity, Infinity),
    },
  };
}

function print(report, copy, events) {
  const { requests, failed, oldAfterSwitch, phases, publishStart, pointerAt, firstNewEnd } = report;
  const byModel = (id) => requests.filter((r) => r.model === id).length;
  const s = (ms) => (ms === undefined ? "never" : `${((ms - requests[0].start) / 1000).toFixed(2)} s`);
  console.log("");
  console.log(
    `requests ${requests.length}, failed ${failed.length}; answers: ${copy.oldId} ${byModel(copy.oldId)}, ${copy.newId} ${byModel(copy.newId)}`,
  );
  console.log(`old model answers after the first new one: ${oldAfterSwitch.length}`);
  console.log(`publish started ${s(publishStart)}, pointer written ${s(pointerAt)}, first answer from the new model ${s(firstNewEnd)}`);
  console.log(
    `switch window (pointer write -> first new answer): ${pointerAt && firstNewEnd ? `${((firstNewEnd - pointerAt) / 1000).toFixed(2)} s` : "-"}`,
  );
  console.log(`latency before the publish   ${latency(phases.before)}`);
  console.log(`latency while it uploads     ${latency(phases.uploading)}`);
  console.log(`latency in the switch window ${latency(phases.switching)}`);
  console.log(`latency after the switch     ${latency(phases.after)}`);
  for (const r of failed.slice(0, 5)) console.log(`failed: status ${r.status} ${r.error}`);
  for (const event of events) console.log(`worker: ${event}`);
}

if (!existsSync(join(root, "build/kernels/dense-int8.wasm"))) {
  console.error("bench:switch: build the wasm kernels first: npm run build:wasm");
  process.exit(2);
}
main().catch((error) => {
  console.error(`bench:switch: ${error.stack ?? error.message}`);
  process.exit(1);
});
