/**
 * Reads a package's report card from R2 (docs/model-package.md, "report"): report.json, bounded and checked
 * against the manifest's length and SHA-256 like the weights, and thumbnails.png as a stream. Its memory is
 * charged to the isolate's ledger for as long as the caller holds it.
 */
import { MAX_REPORT_BYTES, R2_READ_TIMEOUT_MS, REPORT_MEMORY_FACTOR, packageKey } from "../config";
import type { MemoryBudget } from "../memory/budget";
import type { Manifest } from "../package/manifest";

/** Why a package's report could not be used; GET /v1/models answers without it and logs this. */
export class ReportError extends Error {
  override name = "ReportError";
}

export interface HeldReport {
  /** The parsed report.json. */
  report: unknown;
  /** Gives its memory back to the ledger; call once the answer is written. */
  release(): void;
}

const hex = (buffer: ArrayBuffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** `work`, or a ReportError when it takes longer than `ms`. */
async function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ReportError(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, stalled]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/**
 * The manifest's report.json, parsed, with its memory reserved in `budget` (an OverloadedError from the
 * ledger propagates: the client should come back); undefined when the package has none. A file over
 * MAX_REPORT_BYTES, or one that differs from the manifest, missing or unreadable, is a ReportError.
 */
export async function readReport(
  bucket: R2Bucket,
  manifest: Manifest,
  budget: MemoryBudget,
  options: { timeoutMs?: number; label?: string } = {},
): Promise<HeldReport | undefined> {
  const ref = manifest.report;
  if (!ref) return undefined;
  const ms = options.timeoutMs ?? R2_READ_TIMEOUT_MS;
  const key = packageKey(manifest.id, ref.file);
  // Refused before any byte is read: the manifest's own figure, then what R2 holds.
  if (ref.bytes > MAX_REPORT_BYTES) throw new ReportError(`${key}: the manifest says ${ref.bytes} bytes, over ${MAX_REPORT_BYTES}`);
  const reservation = await budget.reserve(ref.bytes * REPORT_MEMORY_FACTOR, { label: options.label ?? `report ${manifest.id}` });
  try {
    const object = await within(bucket.get(key), ms, `R2 get ${key}`);
    if (!object) throw new ReportError(`${key} is missing`);
    if (object.size !== ref.bytes) {
      await object.body.cancel().catch(() => {});
      throw new ReportError(`${key} is ${object.size} bytes, the manifest says ${ref.bytes}`);
    }
    const bytes = await within(object.arrayBuffer(), ms, `reading ${key}`);
    const digest = hex(await crypto.subtle.digest("SHA-256", bytes));
    if (digest !== ref.sha256) throw new ReportError(`${key} fails its SHA-256 check (expected ${ref.sha256}, got ${digest})`);
    let report: unknown;
    try {
      report = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new ReportError(`${key} is not valid JSON`);
    }
    return { report, release: () => reservation.release() };
  } catch (error) {
    reservation.release();
    throw error;
  }
}

/**
 * The manifest's thumbnails.png as an R2 body, its length checked against the manifest (the bytes stream to
 * the client as they come, so their hash cannot be checked before they leave); undefined when the package has
 * none or R2 lacks it.
 */
export async function openThumbnails(bucket: R2Bucket, manifest: Manifest): Promise<R2ObjectBody | undefined> {
  const ref = manifest.report?.thumbnails;
  if (!ref) return undefined;
  const key = packageKey(manifest.id, ref.file);
  const object = await within(bucket.get(key), R2_READ_TIMEOUT_MS, `R2 get ${key}`);
  if (!object) return undefined;
  if (object.size !== ref.bytes) {
    await object.body.cancel().catch(() => {});
    throw new ReportError(`${key} is ${object.size} bytes, the manifest says ${ref.bytes}`);
  }
  return object;
}
