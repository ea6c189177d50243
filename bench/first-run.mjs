#!/usr/bin/env node
/**
 * Usage: npm run bench:first-run [-- --repeats 3] [--port 8790]
 *
 * What a new user waits for: from starting `npm start` (scripts/start.mjs) on an empty local bucket, as on a
 * fresh clone, until its first `POST /v1/classify` of a shipped sample is answered 200. Each repeat uses a new
 * persist directory (so the bucket is seeded every time) and polls the classify every 50 ms from the moment
 * the process starts. Also counts the lines npm start printed that look like errors or warnings (a normal
 * start should print none). Prints each repeat, then the median and spread; exits 1 if a start failed.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCli, usageError } from "../scripts/lib/cli.mjs";

const spec = {
  name: "bench:first-run",
  summary:
    "Times `npm start` on an empty local bucket until its first POST /v1/classify is answered 200, a fresh persist directory per repeat.",
  options: {
    repeats: { type: "string", default: "3", value: "N", help: "How many times to start from scratch." },
    port: { type: "string", default: "8790", value: "N", help: "The port npm start serves on, at http://127.0.0.1:N." },
  },
};
const { values } = parseCli(spec);
const repeats = Number(values.repeats);
const port = Number(values.port);
if (!(repeats >= 1)) usageError(spec, `--repeats must be a positive number, got ${values.repeats}`);
if (!(port > 0)) usageError(spec, `--port must be a positive number, got ${values.port}`);
const root = new URL("..", import.meta.url).pathname;
const sample = readFileSync(join(root, "samples/fmnist/ankle-boot-0.png"));
const LIMIT_MS = 120_000;
// What a user would read as trouble: wrangler's and our own error and warning lines.
const TROUBLE = /\b(error|warn(ing)?)\b|✘|▲/i;

async function once() {
  const state = mkdtempSync(join(tmpdir(), "alexnet-edge-first-run-"));
  const started = performance.now();
  // `npm start` itself, as a user types it: npm's own start-up is part of the wait.
  const child = spawn("npm", ["start", "--", "--port", String(port), "--persist-to", state], {
    cwd: root,
    detached: true, // its own process group, so wrangler and workerd stop with it
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  let exited = false;
  child.on("exit", () => (exited = true));
  try {
    while (performance.now() - started < LIMIT_MS && !exited) {
      try {
        const response = await fetch(`http://127.0.0.1:${port}/v1/classify`, {
          method: "POST",
          headers: { "content-type": "image/png" },
          body: sample,
        });
        if (response.status === 200) {
          const answer = await response.json();
          return {
            ms: performance.now() - started,
            top: answer.predictions[0].label,
            trouble: output.split("\n").filter((l) => TROUBLE.test(l)),
          };
        }
        await response.arrayBuffer();
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(exited ? `npm start exited before answering:\n${output}` : `no answer within ${LIMIT_MS / 1000} s:\n${output}`);
  } finally {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // already gone
    }
    await new Promise((resolve) => (exited ? resolve() : child.on("exit", resolve)));
    rmSync(state, { recursive: true, force: true });
  }
}

const times = [];
let troubled = 0;
for (let r = 0; r < repeats; r++) {
  const { ms, top, trouble } = await once();
  times.push(ms);
  troubled += trouble.length;
  console.log(
    `repeat ${r + 1}/${repeats}: first classify answered after ${(ms / 1000).toFixed(2)} s (${top}); error or warning lines: ${trouble.length}${trouble.length ? `\n  ${trouble.join("\n  ")}` : ""}`,
  );
}
const sorted = [...times].sort((a, b) => a - b);
const median = sorted.length % 2 ? sorted[sorted.length >> 1] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
console.log(
  `first classify: median ${(median / 1000).toFixed(2)} s (min ${(sorted[0] / 1000).toFixed(2)}, max ${(sorted.at(-1) / 1000).toFixed(2)}, n=${repeats}); error or warning lines in all: ${troubled}`,
);
