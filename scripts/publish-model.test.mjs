/**
 * Runs scripts/publish-model.mjs for real, with --local against a temporary persist directory, on the
 * fixture packages: `npm run test:scripts`. The bucket is read back through a Miniflare instance of its
 * own, and once through the wrangler CLI, to show that wrangler (and so `wrangler dev`) sees what it wrote.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { openLocalBucket } from "./lib/local-r2.mjs";
import { openBucket } from "./lib/wrangler-r2.mjs";

const root = resolve(import.meta.dirname, "..");
const TINY = join(root, "test/fixtures/tiny-package");
const TINY_GRAY = join(root, "test/fixtures/tiny-gray-package");

let work;
let persistTo;

/** Opens the local bucket for one question and closes it again: publish-model writes it from another process. */
async function withBucket(question) {
  const bucket = openLocalBucket({ bucket: "alexnet-edge-models", persistTo });
  try {
    return await question(bucket);
  } finally {
    await bucket.close();
  }
}

function publish(...args) {
  const result = spawnSync(process.execPath, [join(root, "scripts/publish-model.mjs"), ...args, "--local", "--persist-to", persistTo], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  return { code: result.status, out: result.stdout + result.stderr };
}

async function servedId() {
  const pointer = await withBucket((bucket) => bucket.get("models/current.json"));
  return pointer && JSON.parse(pointer.toString()).id;
}

describe("npm run publish-model -- --local", { concurrency: false }, () => {
  before(() => {
    work = mkdtempSync(join(tmpdir(), "publish-model-test-"));
    persistTo = join(work, "state");
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("uploads a package, verifies it and points models/current.json at it", async () => {
    const { code, out } = publish(TINY);
    assert.equal(code, 0, out);
    assert.match(out, /weights\.safetensors: stored and verified/);
    assert.match(out, /tiny-package is now the served model/);
    assert.equal(await servedId(), "tiny-package");
    const weights = await withBucket((bucket) => bucket.digest("models/tiny-package/weights.safetensors"));
    assert.equal(weights.sha256, JSON.parse(readFileSync(join(TINY, "manifest.json"), "utf8")).weights.sha256);
  });

  it("wrangler reads the pointer it wrote from the same persist directory", async () => {
    const wrangler = openBucket({ bucket: "alexnet-edge-models", mode: "local", persistTo, cwd: root, log: () => {} });
    const pointer = await wrangler.get("models/current.json");
    assert.equal(JSON.parse(pointer.toString()).id, "tiny-package");
  });

  it("publishing the same package again uploads nothing and changes nothing", () => {
    const { code, out } = publish(TINY);
    assert.equal(code, 0, out);
    assert.doesNotMatch(out, /uploading/);
    assert.match(out, /weights\.safetensors: already in the bucket/);
    assert.match(out, /already the served model/);
  });

  it("refuses a package whose weights do not match its manifest, before uploading anything", async () => {
    const tampered = join(work, "tampered");
    cpSync(TINY_GRAY, tampered, { recursive: true });
    const weights = readFileSync(join(tampered, "weights.safetensors"));
    weights[weights.length - 1] ^= 0xff;
    writeFileSync(join(tampered, "weights.safetensors"), weights);
    const { code, out } = publish(tampered);
    assert.equal(code, 1, out);
    assert.match(out, /SHA-256 .* the manifest says/);
    assert.doesNotMatch(out, /uploading/);
    assert.equal(await withBucket((bucket) => bucket.get("models/tiny-gray-package/manifest.json")), null);
    assert.equal(await servedId(), "tiny-package");
  });

  it("refuses to overwrite a published package id with different bytes", async () => {
    const changed = join(work, "changed");
    cpSync(TINY, changed, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(changed, "manifest.json"), "utf8"));
    manifest.metrics = { note: "retrained, same id" };
    writeFileSync(join(changed, "manifest.json"), JSON.stringify(manifest, null, 2));
    const { code, out } = publish(changed);
    assert.equal(code, 1, out);
    assert.match(out, /Packages are immutable/);
    assert.equal(await servedId(), "tiny-package");
  });

  it("--rollback switches back to the previously served package, and refuses when there is none", async () => {
    const second = publish(TINY_GRAY);
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /tiny-gray-package is now the served model \(was tiny-package/);
    assert.equal(await servedId(), "tiny-gray-package");

    const back = publish("--rollback");
    assert.equal(back.code, 0, back.out);
    assert.match(back.out, /tiny-package is the served model again \(was tiny-gray-package\)/);
    assert.equal(await servedId(), "tiny-package");

    const none = publish("--rollback");
    assert.equal(none.code, 1, none.out);
    assert.match(none.out, /nothing to roll back to/);
    assert.equal(await servedId(), "tiny-package");
  });

  it("uploads and verifies the report card the manifest names, and refuses a package that lacks it", async () => {
    const carded = join(work, "carded");
    cpSync(TINY, carded, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(carded, "manifest.json"), "utf8"));
    manifest.id = "tiny-carded";
    const files = { "report.json": Buffer.from('{"accuracy":0.5}\n'), "thumbnails.png": Buffer.from("not really a png") };
    const ref = (name) => ({ file: name, bytes: files[name].length, sha256: createHash("sha256").update(files[name]).digest("hex") });
    manifest.report = { ...ref("report.json"), thumbnails: ref("thumbnails.png") };
    writeFileSync(join(carded, "manifest.json"), JSON.stringify(manifest, null, 2));

    writeFileSync(join(carded, "report.json"), files["report.json"]);
    const missing = publish(carded);
    assert.equal(missing.code, 1, missing.out);
    assert.match(missing.out, /names thumbnails\.png, which is missing/);

    writeFileSync(join(carded, "thumbnails.png"), files["thumbnails.png"]);
    const { code, out } = publish(carded);
    assert.equal(code, 0, out);
    assert.match(out, /report\.json: stored and verified/);
    assert.match(out, /thumbnails\.png: stored and verified/);
    for (const name of Object.keys(files)) {
      const stored = await withBucket((bucket) => bucket.digest(`models/tiny-carded/${name}`));
      assert.equal(stored.sha256, ref(name).sha256);
    }
  });
});
