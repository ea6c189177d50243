#!/usr/bin/env node
/**
 * Runs alexnet-edge locally on the default model: `npm start`.
 *
 * Usage: npm start [-- --model DIR] [--port 8787] [--persist-to .state]   (`npm start -- --help` lists the options)
 *
 * Steps: builds the wasm kernel if it is missing (`npm run build:wasm`); runs
 * `wrangler dev --port 8787 --ip 127.0.0.1 --persist-to .state` in its own process group; meanwhile publishes
 * the package to that local bucket with the same code as `npm run publish-model -- DIR --local` (skips files
 * already there, reads every file back to check its SHA-256, then points models/current.json at it), through
 * one Miniflare instance on the same persist directory (scripts/lib/local-r2.mjs), not the wrangler CLI;
 * only then asks the Worker for /readyz, so the Worker is never asked for a model that is not there yet.
 * Prints how long each step took. Ctrl-C (or SIGTERM) stops wrangler and workerd with it. Exits non-zero
 * if any step fails.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseCli, usageError } from "./lib/cli.mjs";
import { findDefaultPackage } from "./lib/model-package.mjs";
import { publishPackage } from "./lib/publish.mjs";
import { assertPortFree, startWranglerDev, workerdVersion } from "./lib/wrangler-dev.mjs";
import { openLocalBucket } from "./lib/local-r2.mjs";
import { modelsBucketName } from "./lib/wrangler-r2.mjs";

const root = resolve(import.meta.dirname, "..");
const IP = "127.0.0.1";
/** Written into the persist directory: which workerd wrote it last. */
const STAMP = "workerd-version.txt";

const log = (line) => console.log(`start: ${line}`);
const startedAt = Date.now();
/** Seconds since npm start began, for the step timings it prints. */
const elapsed = () => `${((Date.now() - startedAt) / 1000).toFixed(1)} s`;
function fail(message) {
  console.error(`start: ${message}`);
  process.exit(1);
}

const spec = {
  name: "start",
  summary: "Runs alexnet-edge locally: wrangler dev on 127.0.0.1, with the model package published to its local R2 bucket.",
  options: {
    model: {
      type: "string",
      value: "DIR",
      help: "The model package to serve (default: the one subdirectory of model/ with a manifest.json).",
    },
    port: { type: "string", default: "8787", value: "N", help: "The port wrangler dev listens on, at http://127.0.0.1:N." },
    "persist-to": { type: "string", default: ".state", value: "DIR", help: "The directory holding the local R2 state." },
  },
  examples: ["npm start", "npm start -- --port 8788 --model model/alexnet-fmnist-64-v8"],
};
const { values } = parseCli(spec);
const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) usageError(spec, `--port must be a port number, got ${values.port}`);
const persistTo = resolve(root, values["persist-to"]);

/** A path as the user would type it: relative inside the repository, absolute outside it. */
const shown = (path) => (relative(root, path).startsWith("..") ? path : relative(root, path) || ".");

/** workerd versions are 1.YYYYMMDD.N: numeric comparison, part by part. */
function newer(a, b) {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) > (pb[i] ?? 0);
  return false;
}

/** A persist directory written by a newer workerd crashes an older one (its SQLite schema): refuse early. */
function checkPersistDir() {
  const ours = workerdVersion();
  const stampPath = join(persistTo, STAMP);
  const theirs = existsSync(stampPath) ? readFileSync(stampPath, "utf8").trim() : null;
  if (theirs && newer(theirs, ours)) {
    fail(
      `${shown(persistTo)} was written by workerd ${theirs}, newer than this checkout's ${ours}, which would crash on it. ` +
        `It only holds local copies of published models: delete it (rm -rf ${shown(persistTo)}) and run npm start again, or pass --persist-to another directory.`,
    );
  }
  mkdirSync(persistTo, { recursive: true });
  writeFileSync(stampPath, `${ours}\n`);
}

const LOCAL_POINTER_CHECK_SECONDS = 2;

/**
 * The id /readyz reports, polled until it is `expected` (a Worker that loaded earlier switches soon).
 * /readyz, not /v1/models: it stays open when .dev.vars sets API_KEYS.
 */
async function servedModelId(expected) {
  let id;
  for (let i = 0; i < 10; i++) {
    id = (await (await fetch(`http://${IP}:${port}/readyz`)).json()).model;
    if (id === expected) break;
    await new Promise((r) => setTimeout(r, LOCAL_POINTER_CHECK_SECONDS * 500));
  }
  return id;
}

/** The running wrangler dev and the seeding bucket, once started: every exit path stops them. */
let dev;
let bucket;

async function main() {
  await assertPortFree(port, IP);

  const kernel = join(root, "build/kernels/dense-int8.wasm");
  if (!existsSync(kernel)) {
    log("building the wasm kernel (npm run build:wasm)");
    const build = spawnSync("npm", ["run", "build:wasm"], { cwd: root, stdio: "inherit" });
    if (build.status !== 0) fail("npm run build:wasm failed");
  }

  const packageDir = values.model ? resolve(values.model) : findDefaultPackage(join(root, "model"));
  if (!existsSync(join(packageDir, "manifest.json"))) fail(`${values.model} is not a model package: it has no manifest.json`);
  checkPersistDir();
  // wrangler dev starts (seconds: bundling, then workerd) while the bucket is seeded; nothing asks the
  // Worker for the model before the pointer is written, and a failed seeding stops it again.
  log(`starting wrangler dev on http://${IP}:${port} (Ctrl-C stops it)`);
  // Locally the Worker re-reads the model pointer every 2 s (deployed: wrangler.toml's 30 s), so a model
  // published while it runs is soon answered by it.
  dev = startWranglerDev({
    cwd: root,
    port,
    ip: IP,
    persistTo,
    stdio: "inherit",
    vars: { POINTER_CHECK_SECONDS: String(LOCAL_POINTER_CHECK_SECONDS) },
  });
  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping wrangler dev and workerd`);
    await Promise.all([dev.stop(), bucket?.close()]);
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => void stop(signal));
  dev.exited.then(({ code, signal }) => {
    if (stopping) return;
    console.error(`start: wrangler dev exited (${signal ?? `code ${code}`})`);
    dev.stop().then(() => process.exit(code || 1));
  });

  log(`seeding the local R2 bucket in ${shown(persistTo)} with ${shown(packageDir)}`);
  bucket = openLocalBucket({ bucket: modelsBucketName(join(root, "wrangler.toml")), persistTo });
  const { id } = await publishPackage(bucket, packageDir, { log });
  await bucket.close();
  bucket = undefined;
  log(`seeded at ${elapsed()}`);

  await dev.waitFor("/healthz", 120_000);
  log(`wrangler dev answers at ${elapsed()}; loading the model`);
  const ready = await dev.waitFor("/readyz", 120_000).catch((error) => error);
  if (ready instanceof Error) {
    log(`the Worker answers, but the model did not load: ${ready.message}`);
    return;
  }
  const served = await servedModelId(id);
  if (served !== id) log(`the Worker still serves ${served}, not ${id}; it re-reads the pointer every ${LOCAL_POINTER_CHECK_SECONDS} s`);
  else
    log(
      `ready at ${elapsed()}: serving ${id} on http://${IP}:${port}  (demo page: http://${IP}:${port}/ , API: http://${IP}:${port}/openapi.json)`,
    );
}

main().catch(async (error) => {
  await Promise.all([dev?.stop(), bucket?.close()]);
  fail(error?.message ?? String(error));
});
