/**
 * Reads model packages from R2 (docs/model-package.md, "R2 layout"): the pointer, a manifest, and the
 * weights as a stream that proves its length and SHA-256 as it ends. Knows nothing of tensors or HTTP.
 *
 * Every failure becomes a ModelUnavailableError whose code says what a client can expect:
 * - `model_not_found`: the bucket lacks what the pointer promises; it stays so until someone publishes.
 * - `model_corrupt`: the bytes are there but wrong (length, hash, schema); packages are immutable, so it stays.
 * - `model_unavailable`: R2 failed, stalled or cut a body short; trying again later may work.
 * Its `message` is for clients and names no R2 key or hash; `detail` carries those for the log.
 */
import { POINTER_KEY, R2_READ_TIMEOUT_MS, packageKey } from "../config";
import { ManifestError, parseManifest, type Manifest } from "../package/manifest";
import { describeError } from "../describe-error";

export type ModelErrorCode = "model_not_found" | "model_corrupt" | "model_unavailable";

/** The served model cannot be loaded; the HTTP layer answers 503 with `code`. */
export class ModelUnavailableError extends Error {
  override name = "ModelUnavailableError";
  /** What happened, with R2 keys, hashes and the underlying error: for the log, never for clients. */
  readonly detail: string;
  /** Seconds until this isolate tries again, when known (the retry backoff). */
  readonly retryAfterSeconds: number | undefined;
  constructor(
    readonly code: ModelErrorCode,
    message: string,
    options: { detail?: string; cause?: unknown; retryAfterSeconds?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.detail = options.detail ?? message;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** Sentences clients see. */
const STORE_FAULT = "The model store could not be read just now (a temporary fault); try again shortly.";
const FAILED_INTEGRITY = "The published model failed its integrity check.";

export interface StoreOptions {
  /** Longest wait for one R2 call or one read of a body, in ms; a stall past it is a fault. */
  timeoutMs?: number;
}

const fault = (detail: string, cause?: unknown) => new ModelUnavailableError("model_unavailable", STORE_FAULT, { detail, cause });

/** `work`, or a model_unavailable fault when it throws or takes longer than `ms`. */
async function faultless<T>(work: () => Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(fault(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work(), stalled]);
  } catch (error) {
    if (error instanceof ModelUnavailableError) throw error;
    throw fault(`${what} failed: ${describeError(error)}`, error);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

const timeoutOf = (options: StoreOptions) => options.timeoutMs ?? R2_READ_TIMEOUT_MS;

/** The id of the package the deployment serves. */
export async function readPointer(bucket: R2Bucket, options: StoreOptions = {}): Promise<string> {
  const ms = timeoutOf(options);
  const object = await faultless(() => bucket.get(POINTER_KEY), ms, `R2 get ${POINTER_KEY}`);
  if (!object)
    throw new ModelUnavailableError("model_not_found", "No model is published yet.", {
      detail: `${POINTER_KEY} is missing from the bucket`,
    });
  const text = await faultless(() => object.text(), ms, `reading ${POINTER_KEY}`);
  let id: unknown;
  try {
    id = (JSON.parse(text) as { id?: unknown }).id;
  } catch (cause) {
    throw new ModelUnavailableError("model_corrupt", "The pointer to the published model is damaged.", {
      detail: `${POINTER_KEY} is not valid JSON`,
      cause,
    });
  }
  if (typeof id !== "string" || id === "") {
    throw new ModelUnavailableError("model_corrupt", "The pointer to the published model is damaged.", {
      detail: `${POINTER_KEY} names no package id`,
    });
  }
  return id;
}

export async function readManifest(bucket: R2Bucket, id: string, options: StoreOptions = {}): Promise<Manifest> {
  const ms = timeoutOf(options);
  const key = packageKey(id, "manifest.json");
  const object = await faultless(() => bucket.get(key), ms, `R2 get ${key}`);
  if (!object) {
    throw new ModelUnavailableError("model_not_found", `The published model ${id} is missing from the model store.`, {
      detail: `model package ${id} has no manifest (${key})`,
    });
  }
  const text = await faultless(() => object.text(), ms, `reading ${key}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ModelUnavailableError("model_corrupt", `The published model ${id} has a manifest that is not valid JSON.`, {
      detail: `${key} is not valid JSON`,
      cause,
    });
  }
  try {
    const manifest = parseManifest(json);
    if (manifest.id !== id) throw new ManifestError(`manifest id ${manifest.id} differs from the id it is published under, ${id}`);
    return manifest;
  } catch (cause) {
    const problem = cause instanceof ManifestError ? cause.message : describeError(cause);
    // The schema's own words say what is wrong, and hold no key or hash: the publisher can act on them.
    throw new ModelUnavailableError("model_corrupt", `The published model ${id} has an invalid manifest: ${problem}`, {
      detail: `${key}: ${problem}`,
      cause,
    });
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
 * length or SHA-256 (`model_corrupt`) or when R2 fails, stalls or ends the body early (`model_unavailable`),
 * so a consumer that only commits after a clean end never uses them.
 */
export async function openWeights(bucket: R2Bucket, manifest: Manifest, options: StoreOptions = {}): Promise<AsyncIterable<Uint8Array>> {
  const ms = timeoutOf(options);
  const { file, bytes, sha256 } = manifest.weights;
  const key = packageKey(manifest.id, file);
  const object = await faultless(() => bucket.get(key), ms, `R2 get ${key}`);
  if (!object) {
    throw new ModelUnavailableError(
      "model_not_found",
      `The published model ${manifest.id} is incomplete: its weights are missing from the model store.`,
      {
        detail: `model package ${manifest.id} has no weights file (${key})`,
      },
    );
  }
  if (object.size !== bytes) {
    await object.body.cancel().catch(() => {});
    throw new ModelUnavailableError("model_corrupt", FAILED_INTEGRITY, {
      detail: `${key} is ${object.size} bytes, the manifest says ${bytes}`,
    });
  }
  return readVerified(object.body, { bytes, sha256, key, timeoutMs: ms });
}

async function* readVerified(
  body: ReadableStream<Uint8Array>,
  expected: { bytes: number; sha256: string; key: string; timeoutMs: number },
): AsyncGenerator<Uint8Array> {
  const digest = new crypto.DigestStream("SHA-256");
  const writer = digest.getWriter();
  const reader = body.getReader({ mode: "byob" });
  // `min` (WHATWG Streams, newer than these types) makes workerd fill the buffer, not return 64 KiB.
  const read = reader.read as (view: Uint8Array, options: { min: number }) => Promise<ReadableStreamReadResult<Uint8Array>>;
  let buffer = new ArrayBuffer(READ_BYTES);
  let received = 0;
  let finished = false;
  try {
    for (;;) {
      const view = new Uint8Array(buffer, 0, Math.min(READ_BYTES, Math.max(1, expected.bytes - received)));
      const { done, value } = await faultless(
        () => read.call(reader, view, { min: view.byteLength }),
        expected.timeoutMs,
        `reading ${expected.key} at byte ${received}`,
      );
      // A stream that closes mid-read may hand over its last bytes together with `done`.
      if (value && value.byteLength > 0) {
        received += value.byteLength;
        if (received > expected.bytes)
          throw new ModelUnavailableError("model_corrupt", FAILED_INTEGRITY, {
            detail: `${expected.key} is longer than the ${expected.bytes} bytes R2 announced`,
          });
        await writer.write(value);
        yield value;
      }
      if (done || !value) break;
      buffer = value.buffer as ArrayBuffer; // the read transferred our buffer: continue with the one it gave back
    }
    finished = true;
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
  }
  // The object's size matched the manifest, so a body that ends early was cut in transit, not stored short.
  if (received < expected.bytes) throw fault(`${expected.key}: the body ended after ${received} of ${expected.bytes} bytes`);
  await writer.close();
  const actual = [...new Uint8Array(await digest.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  if (actual !== expected.sha256) {
    throw new ModelUnavailableError("model_corrupt", FAILED_INTEGRITY, {
      detail: `${expected.key} fails its SHA-256 check (expected ${expected.sha256}, got ${actual})`,
    });
  }
}
