#!/usr/bin/env node
/**
 * Publishes a model package to the R2 bucket and makes it the served model, or rolls back.
 *
 * Usage:
 *   npm run publish-model -- <package dir> [--local | --remote] [--persist-to DIR]
 *   npm run publish-model -- --rollback [--local | --remote] [--persist-to DIR]
 *   (`npm run publish-model -- --help` lists the options)
 *
 * The package is validated before anything is uploaded (manifest schema, file lengths, SHA-256), every
 * uploaded file is read back and hashed, and models/current.json is written last: a half-done upload is
 * never served. Packages are immutable: an id already in the bucket with other bytes is refused.
 * The bucket is the one bound as MODELS in wrangler.toml. Exits non-zero on any failure.
 */
import { resolve } from "node:path";
import { parseCli, usageError } from "./lib/cli.mjs";
import { PackageError } from "./lib/model-package.mjs";
import { publishPackage, rollback } from "./lib/publish.mjs";
import { LocalBucketError, openLocalBucket } from "./lib/local-r2.mjs";
import { modelsBucketName, openBucket, WranglerError } from "./lib/wrangler-r2.mjs";

const spec = {
  name: "publish-model",
  summary:
    "Publishes a model package to the MODELS bucket and makes it the served model (models/current.json), or with --rollback serves the previous one again.",
  options: {
    local: {
      type: "boolean",
      default: false,
      help: "Use the local bucket that `npm start` and `wrangler dev --persist-to DIR` serve (the default when neither --local nor --remote is given).",
    },
    remote: { type: "boolean", default: false, help: "Use the Cloudflare bucket (needs `npx wrangler login` or CLOUDFLARE_API_TOKEN)." },
    "persist-to": {
      type: "string",
      default: ".state",
      value: "DIR",
      help: "The local state directory, the one `npm start` uses (only with --local).",
    },
    rollback: {
      type: "boolean",
      default: false,
      help: "Switch models/current.json back to the previously served package; takes no package dir.",
    },
  },
  positionals: "[PACKAGE_DIR]",
  examples: [
    "npm run publish-model -- model/alexnet-fmnist-64-v8",
    "npm run publish-model -- model/alexnet-fmnist-64-v8 --remote",
    "npm run publish-model -- --rollback --remote",
  ],
};

function fail(message) {
  console.error(`publish-model: ${message}`);
  process.exit(1);
}

const { values, positionals } = parseCli(spec);
if (values.local && values.remote) usageError(spec, "choose one of --local and --remote");
if (values.rollback && positionals.length > 0) usageError(spec, "--rollback takes no package dir");
if (!values.rollback && positionals.length !== 1) usageError(spec, "give one package dir, or --rollback");

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
