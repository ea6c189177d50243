/**
 * Publishing a model package to the bucket and switching the served model (docs/model-package.md, "R2 layout").
 *
 * Order matters, so that a half-done run never becomes the served model:
 *   1. the package is validated on disk (readPackage) before anything is uploaded;
 *   2. weights, samples and the report card are uploaded, then read back and hashed; the manifest goes up last, so a package
 *      "exists" in the bucket only once its manifest is there;
 *   3. only then models/history.json records the previous id and models/current.json names the new one.
 * Packages are immutable: an id whose manifest in the bucket differs from ours is refused, never overwritten.
 */
import { POINTER_KEY, packageKey } from "../../src/config.ts";
import { parseManifest } from "../../src/package/manifest.ts";
import { PackageError, packageFileRefs, readPackage } from "./model-package.mjs";
import { formatBytes } from "./progress.mjs";

/** Previously served ids, most recent last, for `--rollback`. Next to the pointer, outside any package. */
export const HISTORY_KEY = "models/history.json";

/** How many previous ids the history keeps. */
const HISTORY_LENGTH = 20;

const CONTENT_TYPES = { ".json": "application/json", ".safetensors": "application/octet-stream" };
const contentType = (name) => CONTENT_TYPES[name.slice(name.lastIndexOf("."))] ?? "application/octet-stream";

/** Uploads `file` unless the bucket already holds exactly its bytes, then proves the stored copy by hash. */
async function ensureUploaded(bucket, file, { known, log }) {
  if (known) {
    const stored = await bucket.digest(file.key, file.bytes);
    if (stored && stored.bytes === file.bytes && stored.sha256 === file.sha256) {
      log(`  ${file.key}: already in the bucket (${formatBytes(file.bytes)}, sha256 ${file.sha256.slice(0, 12)}...)`);
      return;
    }
    // The manifest is there but this file is missing or damaged: our bytes are the ones the manifest
    // promises (readPackage checked them), so writing them restores the package rather than changing it.
    log(`  ${file.key}: ${stored ? "damaged" : "missing"} in the bucket, uploading it again`);
  }
  log(`  ${file.key}: uploading ${formatBytes(file.bytes)}`);
  await bucket.put(file.key, { file: file.path, contentType: contentType(file.name) });
  const stored = await bucket.digest(file.key, file.bytes);
  if (!stored || stored.bytes !== file.bytes || stored.sha256 !== file.sha256) {
    const got = stored ? `${stored.bytes} bytes, sha256 ${stored.sha256}` : "nothing";
    throw new PackageError(
      `${file.key}: read back ${got}, expected ${file.bytes} bytes, sha256 ${file.sha256}; the upload is not trusted (the served model is unchanged)`,
    );
  }
  log(`  ${file.key}: stored and verified (sha256 ${file.sha256.slice(0, 12)}...)`);
}

async function readJson(bucket, key) {
  const bytes = await bucket.get(key);
  if (bytes === null) return null;
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch (cause) {
    throw new PackageError(`${key} in the bucket is not valid JSON: ${cause.message}`);
  }
}

async function readState(bucket) {
  const pointer = await readJson(bucket, POINTER_KEY);
  const history = (await readJson(bucket, HISTORY_KEY)) ?? { previous: [] };
  if (!Array.isArray(history.previous)) throw new PackageError(`${HISTORY_KEY} in the bucket has no "previous" list`);
  return { current: typeof pointer?.id === "string" ? pointer.id : null, previous: history.previous };
}

/** Writes the history, then the pointer (last: the switch), then reads the pointer back. */
async function switchTo(bucket, id, previous, log) {
  const history = { previous: previous.slice(-HISTORY_LENGTH), updated: new Date().toISOString() };
  await bucket.put(HISTORY_KEY, { data: Buffer.from(`${JSON.stringify(history, null, 2)}\n`), contentType: "application/json" });
  await bucket.put(POINTER_KEY, { data: Buffer.from(`${JSON.stringify({ id })}\n`), contentType: "application/json" });
  const check = await readJson(bucket, POINTER_KEY);
  if (check?.id !== id) throw new PackageError(`${POINTER_KEY} reads back ${JSON.stringify(check)} after writing ${id}`);
  log(`  ${POINTER_KEY} -> ${id}`);
}

/**
 * Uploads the package in `dir` (if not there yet) and makes it the served model.
 * @returns {Promise<{ id: string, previous: string | null, switched: boolean }>}
 */
export async function publishPackage(bucket, dir, { log = console.log } = {}) {
  log(`checking the package in ${dir}`);
  const pkg = await readPackage(dir);
  const { id } = pkg.manifest;
  const manifestFile = pkg.files.at(-1);
  log(`  ${id}: manifest valid, ${pkg.files.map((f) => `${f.name} ${formatBytes(f.bytes)}`).join(", ")}; hashes match`);

  log(`publishing ${id} to the ${bucket.describe}`);
  const stored = await bucket.get(manifestFile.key);
  if (stored !== null && !stored.equals(pkg.manifestBytes)) {
    throw new PackageError(
      `the bucket already holds a different package with id ${id} (its ${manifestFile.key} differs from ${manifestFile.path}). ` +
        `Packages are immutable: give the new model a new id (manifest "id") and publish that.`,
    );
  }
  for (const file of pkg.files.slice(0, -1)) await ensureUploaded(bucket, file, { known: stored !== null, log });
  if (stored === null) await ensureUploaded(bucket, manifestFile, { known: false, log });
  else log(`  ${manifestFile.key}: already in the bucket, identical`);

  const { current, previous } = await readState(bucket);
  if (current === id) {
    log(`${id} is already the served model; nothing to switch`);
    return { id, previous: current, switched: false };
  }
  await switchTo(bucket, id, current ? [...previous, current] : previous, log);
  log(`${id} is now the served model${current ? ` (was ${current}; \`--rollback\` switches back)` : ""}`);
  return { id, previous: current, switched: true };
}

/** Checks that package `id` is complete in the bucket: manifest valid, files match its lengths and hashes. */
async function verifyStoredPackage(bucket, id, log) {
  const manifestJson = await readJson(bucket, packageKey(id, "manifest.json"));
  if (manifestJson === null) throw new PackageError(`package ${id} has no manifest in the bucket`);
  const manifest = parseManifest(manifestJson);
  const refs = packageFileRefs(manifest, manifestJson);
  for (const ref of refs) {
    const key = packageKey(id, ref.file);
    const stored = await bucket.digest(key, ref.bytes);
    if (!stored) throw new PackageError(`package ${id} is incomplete in the bucket: ${key} is missing`);
    if ((ref.bytes !== undefined && stored.bytes !== ref.bytes) || (ref.sha256 !== undefined && stored.sha256 !== ref.sha256)) {
      throw new PackageError(`package ${id} is damaged in the bucket: ${key} does not match its manifest`);
    }
    log(`  ${key}: verified`);
  }
}

/** Switches the pointer back to the previously served id, after checking that package is intact. */
export async function rollback(bucket, { log = console.log } = {}) {
  log(`rolling back on the ${bucket.describe}`);
  const { current, previous } = await readState(bucket);
  if (current === null) throw new PackageError(`nothing to roll back: ${POINTER_KEY} is missing, no model is published`);
  const earlier = [...previous];
  while (earlier.length > 0 && earlier.at(-1) === current) earlier.pop();
  const target = earlier.pop();
  if (target === undefined)
    throw new PackageError(`nothing to roll back to: ${current} is the only model ever published here (${HISTORY_KEY} is empty)`);
  log(`  serving ${current}; the one before was ${target}`);
  await verifyStoredPackage(bucket, target, log);
  await switchTo(bucket, target, earlier, log);
  log(`${target} is the served model again (was ${current})`);
  return { id: target, previous: current };
}
