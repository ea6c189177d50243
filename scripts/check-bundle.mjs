#!/usr/bin/env node
/**
 * Builds the Worker as `wrangler deploy` would, without deploying, and fails if the build breaks or the
 * bundle outgrows the platform limit. For CI: `npm run check:bundle`.
 *
 * Usage: npm run check:bundle [-- --limit-mib 64]
 *
 * Runs `wrangler deploy --dry-run --outdir <temp dir>`, then prints every file's raw and gzip size and
 * the totals. Limit: a Worker may be up to 64 MiB uncompressed (Cloudflare, since 2026-09;
 * docs/platform-notes.md, "Workers limits the design must fit"). Exits 1 if the build fails or the total is over it.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { parseCli, usageError } from "./lib/cli.mjs";
import { formatBytes } from "./lib/progress.mjs";

const spec = {
  name: "check-bundle",
  summary:
    "Builds the Worker as `wrangler deploy` would, without deploying, and fails if the build breaks or the bundle is over the limit.",
  options: {
    "limit-mib": {
      type: "string",
      default: "64",
      value: "MIB",
      help: "The largest total uncompressed size allowed, in MiB: the platform's Worker size limit.",
    },
  },
};
const { values } = parseCli(spec);
const limitBytes = Number(values["limit-mib"]) * 1024 * 1024;
if (!(limitBytes > 0)) usageError(spec, `--limit-mib must be a positive number, got ${values["limit-mib"]}`);

const root = resolve(import.meta.dirname, "..");
const outdir = mkdtempSync(join(tmpdir(), "alexnet-edge-bundle-"));
try {
  console.log(`check-bundle: wrangler deploy --dry-run --outdir ${outdir}`);
  const build = spawnSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outdir], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  if (build.status !== 0) {
    console.error(`check-bundle: the build failed (wrangler exit ${build.status})`);
    process.exit(1);
  }

  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      // Source maps and wrangler's README are not uploaded as part of the Worker.
      else if (!entry.name.endsWith(".map") && entry.name !== "README.md") files.push(path);
    }
  };
  walk(outdir);
  if (files.length === 0) {
    console.error("check-bundle: wrangler wrote no files");
    process.exit(1);
  }

  let raw = 0;
  let gzip = 0;
  for (const file of files.sort()) {
    const size = statSync(file).size;
    const zipped = gzipSync(readFileSync(file), { level: 9 }).length;
    raw += size;
    gzip += zipped;
    console.log(`  ${relative(outdir, file).padEnd(72)} ${formatBytes(size).padStart(10)}  gzip ${formatBytes(zipped).padStart(10)}`);
  }
  console.log(`check-bundle: total ${formatBytes(raw)} raw, ${formatBytes(gzip)} gzip; limit ${formatBytes(limitBytes)} uncompressed`);
  if (raw > limitBytes) {
    console.error(`check-bundle: the bundle is ${formatBytes(raw)}, over the ${formatBytes(limitBytes)} limit`);
    process.exit(1);
  }
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
