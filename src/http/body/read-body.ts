/**
 * Reads a request body within a limit, holding it once, in a buffer that grows in place as bytes arrive (a
 * declared Content-Length over the limit is refused before reading; the byte past the limit ends the read with
 * 413). Memory follows the bytes received, never the length a client declares: a client that declares 4 MiB
 * and trickles holds what it sent, and `BodyOptions.commit` lets the caller account each growth in the ledger.
 *
 * Time is bounded by the client's silence and a whole-body deadline (408), since nothing else ends a request
 * whose Worker waits on I/O. A body that breaks off (the client disconnects, or sends fewer bytes than its
 * Content-Length) is the client's fault: 400 `incomplete_body`, never a 500.
 */
import { BODY_DEADLINE_MS, BODY_IDLE_TIMEOUT_MS } from "../../config";
import { ApiError } from "../errors";
import { ByteSink } from "../../pipeline/byte-sink";

export interface BodyOptions {
  /** Longest silence between chunks, in ms. */
  idleMs?: number;
  /** Longest time for the whole body, in ms, from the first read. */
  deadlineMs?: number;
  /** Called before a buffer holding the body grows to `bytes`; throws to refuse (the ledger is full). */
  commit?: (bytes: number) => void;
  /**
   * Bytes gathered before the first chunk is handed on (or the whole body, if shorter). Nothing downstream
   * can plan a decode, and so reserve its memory, before a client has sent this much: a client trickling its
   * first bytes holds only what it sent, told to `readAhead` as it grows (and 0 when it is handed on).
   */
  readAheadBytes?: number;
  readAhead?: (bytes: number) => void | Promise<void>;
  /** Hears the size of each chunk as it arrives, and of the body's end (for src/pipeline/request-memory.ts's watch). */
  onChunk?: (bytes: number) => void;
  onEnd?: () => void;
  /** Aborting it ends the read with its reason (an ApiError): the request gave way to others waiting for memory. */
  signal?: AbortSignal;
}

export function incompleteBody(cause: unknown): ApiError {
  return new ApiError(
    400,
    "incomplete_body",
    "The request body ended before it was complete: the client disconnected, or sent fewer bytes than its Content-Length.",
    { cause },
  );
}

function bodyTimeout(what: string, why: string): ApiError {
  return new ApiError(408, "body_timeout", `The ${what} ${why}; send it again on a faster or steadier connection.`);
}

/** The declared body length; undefined when absent or not a plain number. */
export function contentLength(request: Request): number | undefined {
  const value = request.headers.get("content-length");
  return value !== null && /^\d{1,15}$/.test(value.trim()) ? Number(value) : undefined;
}

export function bodyTooLarge(limit: number, what: string): ApiError {
  return new ApiError(413, "body_too_large", `The ${what} is over its limit of ${limit} bytes (${(limit / 1048576).toFixed(1)} MiB).`);
}

/** Refuses at once a body whose declared length is over `limit`. */
export function checkDeclaredLength(request: Request, limit: number, what: string): void {
  const declared = contentLength(request);
  if (declared !== undefined && declared > limit) throw bodyTooLarge(limit, what);
}

/** The body's chunks as they arrive, refusing (413) the byte past `limit`, silence and slowness (408). */
export async function* bodyChunks(request: Request, limit: number, what: string, options: BodyOptions = {}): AsyncGenerator<Uint8Array> {
  checkDeclaredLength(request, limit, what);
  if (!request.body) return;
  const idleMs = options.idleMs ?? BODY_IDLE_TIMEOUT_MS;
  const deadline = Date.now() + (options.deadlineMs ?? BODY_DEADLINE_MS);
  const reader = request.body.getReader();
  let received = 0;
  let finished = false;
  let refused = false;
  // The first readAheadBytes, gathered before anything is handed on.
  const ahead: Uint8Array[] = [];
  let aheadBytes = 0;
  const readAhead = options.readAheadBytes ?? 0;
  try {
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await readWithin(
          reader,
          Math.min(idleMs, Math.max(0, deadline - Date.now())),
          () =>
            Date.now() >= deadline
              ? bodyTimeout(what, "took too long to arrive")
              : bodyTimeout(what, `sent nothing for ${idleMs / 1000} s`),
          options.signal,
        );
      } catch (error) {
        refused = true;
        throw error;
      }
      if (next.done) {
        finished = true;
        options.onEnd?.();
        await options.readAhead?.(0);
        yield* ahead.splice(0);
        return;
      }
      received += next.value.byteLength;
      if (received > limit) {
        refused = true;
        throw bodyTooLarge(limit, what);
      }
      options.onChunk?.(next.value.byteLength);
      if (aheadBytes < readAhead) {
        await options.readAhead?.(aheadBytes + next.value.byteLength);
        ahead.push(next.value);
        aheadBytes += next.value.byteLength;
        if (aheadBytes < readAhead) continue;
        await options.readAhead?.(0);
        yield* ahead.splice(0);
        continue;
      }
      yield next.value;
    }
  } finally {
    // Refused here (a limit, a timeout, a broken body): stop the upload. Left by the consumer (its own error,
    // or it needs no more): let go, so the caller can read the rest away before answering (discardRest).
    if (refused) reader.cancel().catch(() => undefined);
    else if (!finished) reader.releaseLock();
  }
}

/**
 * Reads what is left of a body and throws it away, for a request answered with an error while its client is
 * still sending: an answer sent over an upload in progress reaches many clients as a reset connection instead
 * (HTTP/1.1 clients write the whole body before they read). Only a body that declared its length within
 * `limit` is read away: its client means to send that much; a streamed body without a
 * length (or over it) is cut off. Bounded as any body is: `limit` bytes, the idle and whole-body timeouts;
 * whatever stops it, the answer stands.
 */
export async function discardRest(request: Request, limit: number, options: BodyOptions = {}): Promise<void> {
  const declared = contentLength(request);
  if (!request.body || request.body.locked || declared === undefined || declared > limit) return;
  try {
    for await (const _ of bodyChunks(request, limit, "body", options)) {
      // discarded
    }
  } catch {
    // The answer is already decided; a body that breaks off or runs long only ends the discarding.
  }
}

/**
 * The body's timeouts from the environment, where set (BODY_IDLE_TIMEOUT_SECONDS, BODY_DEADLINE_SECONDS: tests
 * shorten them); otherwise src/config.ts's.
 */
export function bodyTimeouts(env: { BODY_IDLE_TIMEOUT_SECONDS?: string; BODY_DEADLINE_SECONDS?: string }): BodyOptions {
  const ms = (value: string | undefined) => (value !== undefined && value !== "" && Number(value) >= 0 ? Number(value) * 1000 : undefined);
  return { idleMs: ms(env.BODY_IDLE_TIMEOUT_SECONDS), deadlineMs: ms(env.BODY_DEADLINE_SECONDS) };
}

/** The whole body in one buffer of its own size. */
export async function readBody(request: Request, limit: number, what: string, options: BodyOptions = {}): Promise<Uint8Array> {
  const sink = new ByteSink(limit, 0, () => bodyTooLarge(limit, what), options.commit);
  for await (const chunk of bodyChunks(request, limit, what, options)) sink.append(chunk);
  return sink.view();
}

/**
 * One read, or `timeout()`'s error after `ms` without a chunk. The timer is a real one: a Worker's clock
 * stands still during compute but moves while it waits on I/O, which is all this waits on. A read that
 * fails (the client went away) is the client's fault.
 */
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ms: number,
  timeout: () => ApiError,
  signal?: AbortSignal,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  if (signal?.aborted) throw signal.reason;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), ms);
    if (signal) {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([
      reader.read().catch((error: unknown) => {
        throw incompleteBody(error);
      }),
      expired,
    ]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}
