/**
 * Every error answer is `{"error": {"code", "message"}}` with the status a client can act on. Codes are
 * stable snake_case; messages are sentences for a person. Stack traces never leave the Worker.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { RETRY_AFTER_SECONDS } from "../config";
import { ImageError } from "../image";
import { OverloadedError } from "../memory/budget";
import { ModelUnavailableError } from "../model/store";
import { noteError } from "./middleware/request-log";
import { describeError } from "../describe-error";

/** A request the client must change: thrown anywhere in the HTTP layer, answered by `onError`. */
export class ApiError extends HTTPException {
  override name = "ApiError";
  constructor(
    status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(status, { message, cause: options?.cause });
  }
}

/** The answer, and its code for the request's log line. */
export function errorResponse(
  c: Context,
  status: ContentfulStatusCode,
  code: string,
  message: string,
  headers?: Record<string, string>,
): Response {
  noteError(c, code);
  return c.json({ error: { code, message } }, status, headers);
}

export function onError(error: Error, c: Context): Response {
  if (error instanceof ApiError) return errorResponse(c, error.status as ContentfulStatusCode, error.code, error.message);
  if (error instanceof ImageError) return errorResponse(c, error.status, error.code, error.message);
  if (error instanceof ModelUnavailableError) {
    // The model store logged the detail (R2 keys, hashes, the cause) once per failure; the message names none.
    const response = errorResponse(c, 503, error.code, error.message, {
      "Retry-After": String(error.retryAfterSeconds ?? RETRY_AFTER_SECONDS),
    });
    noteError(c, error.code, describeError(error));
    return response;
  }
  if (error instanceof OverloadedError) {
    // The isolate's memory ledger is full of other requests: a retry soon, or on another isolate, succeeds.
    return errorResponse(c, 503, "overloaded", `The server is busy: ${error.message}. Try again shortly.`, {
      "Retry-After": String(error.retryAfterSeconds),
    });
  }
  if (error instanceof HTTPException) {
    const status = error.status as ContentfulStatusCode;
    return errorResponse(
      c,
      status,
      status === 413 ? "body_too_large" : "bad_request",
      error.message || "The request could not be processed.",
    );
  }
  const response = errorResponse(c, 500, "internal_error", "The server failed to handle this request; it has been logged.");
  noteError(c, "internal_error", error.stack ?? describeError(error));
  return response;
}

/** The most of a request's path a 404 answer repeats. */
const MAX_ECHOED_PATH = 128;

export function notFound(c: Context): Response {
  // The path is the client's own text: echo a bounded prefix, so an answer (and its log line) stays small.
  const path = new URL(c.req.url).pathname;
  const shown = path.length > MAX_ECHOED_PATH ? `${path.slice(0, MAX_ECHOED_PATH)}... (${path.length} characters)` : path;
  return errorResponse(c, 404, "not_found", `There is no ${c.req.method.slice(0, 16)} ${shown}; see /openapi.json for the API.`);
}
