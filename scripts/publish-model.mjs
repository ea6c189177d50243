#!/usr/bin/env node
/**
 * Publishes a model package to the R2 bucket and makes it the served model, or rolls back.
 *
 * Usage:
 *   npm run publish-model -- <package dir> [--local | --remote] [--persist-to DIR]
 *   npm run publish-model -- --rollback [--local | --remote] [--persist-to DIR]
 *
 *   --local           the local bucket that `npm start` / `wrangler dev --persist-to DIR` serves (default)
 *   --remote          the Cloudflare bucket (needs `npx wrangler login` or CLOUDFLARE_API_TOKEN)
 *   --persist-to DIR  local state directory (default .state, the one `npm start` uses)
 *   --rollback        switch models/current.json back to the previously served package
 *
 * The package is validated before anything is uploaded (manifest schema, file lengths, SHA-256), every
 * uploaded file is read back and hashed, and models/current.json is written last: a half-done upload is
 * never served. Packages are immutable: an id already in the bucket with other bytes is refused.
 * The bucket is the one bound as MODELS in wrangler.toml. Exits non-zero on any failure.
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { PackageError } from "./lib/model-package.mjs";
import { publishPackage, rollback } from "./lib/publish.mjs";
import { LocalBucketError, openLocalBucket } from "./lib/local-r2.mjs";
import { modelsBucketName, openBucket, WranglerError } from "./lib/wrangler-r2.mjs";

const USAGE = `usage: npm run publish-model -- <package dir> [--local | --remote] [--persist-to DIR]
       npm run publish-model -- --rollback [--local | --remote] [--persist-to DIR]`;

function fail(message) {
  console.error(`publish-model: ${message}`);
  process.exit(1);
}

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      local: { type: "boolean", default: false },
      remote: { type: "boolean", default: false },
      rollback: { type: "boolean", default: false },
      "persist-to": { type: "string", default: ".state" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
} catch (error) {
  fail(`${error.message}\n${USAGE}`);
}
const { values, positionals } = args;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (values.local && values.remote) fail(`choose one of --local and --remote\n${USAGE}`);
if (values.rollback ? positionals.length > 0 : positionals.length !== 1) fail(USAGE);

const root = resolve(import.meta.dirname, "..");
const name = modelsBucketName(resolve(root, "wrangler.toml"));
// The local bucket is opened directly (one Miniflare for every call); the remote one through wrangler.
const bucket = values.remote
  ? openBucket({ bucket: name, mode: "remote", cwd: root })
  : openLocalBucket({ bucket: name, persistTo: resolve(values["persist-to"]) });

let failure;
try {
  if (values.rollback) await rollback(bucket);
  else await publishPackage(bucket, resolve(positionals[0]));
} catch (error) {
  failure = error;
} finally {
  await bucket.close?.();
}
if (failure) {
  const known = failure instanceof PackageError || failure instanceof WranglerError || failure instanceof LocalBucketError;
  fail(known ? failure.message : failure.stack);
}
