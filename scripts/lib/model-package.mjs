/**
 * A model package directory on disk (docs/model-package.md), checked before anything is uploaded: the
 * manifest against the Worker's own schema (src/package/manifest.ts, loaded through Node's type stripping,
 * so the schema stays defined once), and every file it names by length and SHA-256.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseManifest } from "../../src/package/manifest.ts";
import { packageKey } from "../../src/config.ts";

export class PackageError extends Error {
  name = "PackageError";
}

export async function sha256File(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * Validates `dir` and lists what to upload, manifest last.
 * @returns {Promise<{ dir: string, manifest: object, manifestBytes: Buffer, files: { name: string, key: string, path: string, bytes: number, sha256: string | undefined }[] }>}
 */
export async function readPackage(dir) {
  const manifestPath = join(dir, "manifest.json");
  if (!existsSync(manifestPath)) throw new PackageError(`${dir} is not a model package: it has no manifest.json`);
  const manifestBytes = readFileSync(manifestPath);
  let json;
  try {
    json = JSON.parse(manifestBytes.toString("utf8"));
  } catch (cause) {
    throw new PackageError(`${manifestPath} is not valid JSON: ${cause.message}`);
  }
  let manifest;
  try {
    manifest = parseManifest(json);
  } catch (cause) {
    throw new PackageError(`${manifestPath}: ${cause.message}`);
  }

  const refs = packageFileRefs(manifest, json);
  const files = [];
  for (const ref of refs) {
    const path = join(dir, ref.file);
    if (!existsSync(path)) throw new PackageError(`${dir}: the manifest names ${ref.file}, which is missing`);
    const bytes = statSync(path).size;
    if (ref.bytes !== undefined && bytes !== ref.bytes) {
      throw new PackageError(
        `${path} is ${bytes} bytes, the manifest says ${ref.bytes}: the package is damaged or was edited after export`,
      );
    }
    const sha256 = await sha256File(path);
    if (ref.sha256 !== undefined && sha256 !== ref.sha256) {
      throw new PackageError(
        `${path} has SHA-256 ${sha256}, the manifest says ${ref.sha256}: the package is damaged or was edited after export`,
      );
    }
    files.push({ name: ref.file, key: packageKey(manifest.id, ref.file), path, bytes, sha256 });
  }
  const manifestSha = createHash("sha256").update(manifestBytes).digest("hex");
  files.push({
    name: "manifest.json",
    key: packageKey(manifest.id, "manifest.json"),
    path: manifestPath,
    bytes: manifestBytes.length,
    sha256: manifestSha,
  });
  return { dir, manifest, manifestBytes, files };
}

/** The default package: the one subdirectory of `modelRoot` that holds a manifest.json. */
export function findDefaultPackage(modelRoot) {
  const root = resolve(modelRoot);
  const candidates = existsSync(root)
    ? readdirSync(root, { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && existsSync(join(root, entry.name, "manifest.json")))
        .map((entry) => join(root, entry.name))
    : [];
  const shown = relative(process.cwd(), root) || ".";
  if (candidates.length === 0) {
    throw new PackageError(
      `no model package in ${shown}/: expected one subdirectory with a manifest.json (train one with scripts/train.py, or pass --model DIR)`,
    );
  }
  if (candidates.length > 1) {
    const names = candidates.map((c) => relative(process.cwd(), c)).join(", ");
    throw new PackageError(`several model packages in ${shown}/ (${names}): choose one with --model DIR`);
  }
  return candidates[0];
}

/**
 * The files a manifest names besides itself, as {file, bytes?, sha256?}: weights, samples, and the report card
 * (report.json, thumbnails.png) when it has one. The samples entry may omit bytes and sha256 (the schema allows
 * it); then only its presence is checked.
 */
export function packageFileRefs(manifest, json) {
  const report = manifest.report ? [manifest.report, manifest.report.thumbnails] : [];
  return [manifest.weights, json.samples ? { ...json.samples, file: manifest.samples.file } : undefined, ...report].filter(Boolean);
}
