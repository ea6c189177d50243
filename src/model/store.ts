/**
 * Reads model packages from R2 (docs/model-package.md, "R2 layout"): the pointer, a manifest, and the
 * weights as a stream that proves its length and SHA-256 as it ends. Knows nothing of tensors.
 */
import { POINTER_KEY, packageKey } from "../config";
import { ManifestError, parseManifest, type Manifest } from "./manifest";

export type ModelErrorCode = "model_not_found" | "model_corrupt" | "model_unavailable";

/** The served model cannot be loaded; the HTTP layer answers 503 with `code`. */
export class ModelUnavailableError extends Error {
  override name = "ModelUnavailableError";
  constructor(
    readonly code: ModelErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The id of the package the deployment serves. */
export async function readPointer(bucket: R2Bucket): Promise<string> {
  const object = await bucket.get(POINTER_KEY);
  if (!object) throw new ModelUnavailableError("model_not_found", `no model is published: ${POINTER_KEY} is missing from the bucket`);
  let id: unknown;
  try {
    id = (JSON.parse(await object.text()) as { id?: unknown }).id;
  } catch (cause) {
    throw new ModelUnavailableError("model_corrupt", `${POINTER_KEY} is not valid JSON`, { cause });
  }
  if (typeof id !== "string" || id === "") throw new ModelUnavailableError("model_corrupt", `${POINTER_KEY} names no package id`);
  return id;
}

export async function readManifest(bucket: R2Bucket, id: string): Promise<Manifest> {
  const key = packageKey(id, "manifest.json");
  const object = await bucket.get(key);
  if (!object) throw new ModelUnavailableError("model_not_found", `model package ${id} has no manifest (${key})`);
  try {
    const manifest = parseManifest(await object.json());
    if (manifest.id !== id) throw new ManifestError(`manifest id ${manifest.id} differs from the package's key ${id}`);
    return manifest;
  } catch (cause) {
    const message = cause instanceof ManifestError ? cause.message : `${key} is not valid JSON`;
    throw new ModelUnavailableError("model_corrupt", `model package ${id}: ${message}`, { cause });
  }
}

/**
 * Bytes per read of the weights. R2 bodies hand out 4 KiB chunks by default, and per-chunk overhead
 * then dominates: 60 MiB took ~1.1 s through a hashing TransformStream, ~0.11 s as 1 MiB BYOB reads
 * (measured in workerd). 1 MiB is also the most the load holds beyond the model itself.
 */
const READ_BYTES = 1 << 20;

/**
 * The package's weights file as a sequence of chunks, each valid only until the next is requested (one
 * buffer is reused). The sequence throws, instead of ending, when the bytes differ from the manifest's
 * length or SHA-256, so a consumer that only commits after a clean end never uses them.
 */
export async function openWeights(bucket: R2Bucket, manifest: Manifest): Promise<AsyncIterable<Uint8Array>> {
  const { file, bytes, sha256 } = manifest.weights;
  const key = packageKey(manifest.id, file);
  const object = await bucket.get(key);
  if (!object) throw new ModelUnavailableError("model_not_found", `model package ${manifest.id} has no weights file (${key})`);
  if (object.size !== bytes) {
    await object.body.cancel();
    throw new ModelUnavailableError("model_corrupt", `model package ${manifest.id}: ${file} is ${object.size} bytes, the manifest says ${bytes}`);
  }
  return readVerified(object.body, sha256, `model package ${manifest.id}: ${file}`);
}

async function* readVerified(body: ReadableStream<Uint8Array>, expectedHex: string, what: string): AsyncGenerator<Uint8Array> {
  const digest = new crypto.DigestStream("SHA-256");
  const writer = digest.getWriter();
  const reader = body.getReader({ mode: "byob" });
  let buffer = new ArrayBuffer(READ_BYTES);
  let finished = false;
  try {
    for (;;) {
      // `min` (WHATWG Streams, newer than these types) makes workerd fill the buffer, not return 64 KiB.
      const read = reader.read as (view: Uint8Array, options: { min: number }) => Promise<ReadableStreamReadResult<Uint8Array>>;
      const { done, value } = await read.call(reader, new Uint8Array(buffer), { min: READ_BYTES });
      if (done || !value) break;
      await writer.write(value);
      yield value;
      buffer = value.buffer as ArrayBuffer;
    }
    finished = true;
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
  }
  await writer.close();
  const actual = [...new Uint8Array(await digest.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  if (actual !== expectedHex) {
    throw new ModelUnavailableError("model_corrupt", `${what} fails its SHA-256 check (expected ${expectedHex}, got ${actual})`);
  }
}
