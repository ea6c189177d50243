/**
 * Reads a request body within a limit, holding it once: straight into one buffer sized by Content-Length
 * when the body declares one (a larger declared length is refused before reading), else into a buffer that
 * grows in place up to the limit (a running cap: the byte past it ends the read with 413).
 */
import { ApiError } from "../errors";
import { ByteSink } from "./byte-sink";

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

/** The body's chunks as they arrive, refusing (413) the byte past `limit`. */
export async function* bodyChunks(request: Request, limit: number, what: string): AsyncGenerator<Uint8Array> {
  checkDeclaredLength(request, limit, what);
  if (!request.body) return;
  const reader = request.body.getReader();
  let received = 0;
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      received += value.byteLength;
      if (received > limit) throw bodyTooLarge(limit, what);
      yield value;
    }
  } finally {
    // Left early (a limit, or the consumer's own error): stop the upload rather than drain it.
    if (!finished) reader.cancel().catch(() => undefined);
  }
}

/** The whole body in one buffer of its own size. */
export async function readBody(request: Request, limit: number, what: string): Promise<Uint8Array> {
  const sink = new ByteSink(limit, contentLength(request) ?? 0, () => bodyTooLarge(limit, what));
  for await (const chunk of bodyChunks(request, limit, what)) sink.append(chunk);
  return sink.view();
}
