/**
 * One structured log line per request: `console.log` of one JSON object, which Workers Logs indexes field
 * by field (https://developers.cloudflare.com/workers/observability/logs/workers-logs/). 5xx answers go to
 * `console.error`, so they show as errors there. Other parts of the app add what they know through
 * `noteError` and `noteModel`; nothing in the line comes from a secret (no keys, no Authorization header).
 *
 * `ms` is there only where the runtime's clock advanced: a deployed Worker's clock moves only at I/O
 * (https://developers.cloudflare.com/workers/runtime-apis/performance/), so a 0 would be a lie, not a fast request.
 */
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";

export type RequestLogEnv = {
  Variables: {
    requestId?: string;
    errorCode?: string;
    errorDetail?: string;
    modelId?: string;
    rateLimit?: "unavailable";
  };
};

export interface RequestLogLine {
  message: "request";
  request_id: string | undefined;
  method: string;
  /** The route's pattern (`/samples/:name`), not the path: bounded, and free of what clients put in URLs. */
  route: string | null;
  status: number;
  model?: string;
  /** The request's Content-Length, when it sent one. */
  request_bytes?: number;
  /** The answer's `error.code`. */
  error?: string;
  /** What the answer did not tell the client (a 5xx's cause), truncated. */
  detail?: string;
  rate_limit?: "unavailable";
  ms?: number;
}

/** Stack traces and R2 messages are cut here: one line stays one line's worth. */
const MAX_DETAIL_CHARS = 2000;

/** Records the answer's error code, and for the log only, what the client was not told. */
export function noteError(c: Context, code: string, detail?: string): void {
  c.set("errorCode", code);
  if (detail !== undefined) c.set("errorDetail", detail.slice(0, MAX_DETAIL_CHARS));
}

/** Records which model answered. */
export function noteModel(c: Context, modelId: string): void {
  c.set("modelId", modelId);
}

/**
 * The pattern of the route that answered; when middleware answered (a 401, a 429, registered for ALL
 * methods), the route the request was headed for; null when no route matched (a 404).
 */
function routeOf(c: Context): string | null {
  const routes = matchedRoutes(c);
  const answered = routes[c.req.routeIndex];
  if (answered && answered.method !== "ALL") return answered.path;
  return routes.find((route) => route.method !== "ALL")?.path ?? null;
}

export function requestLog(): MiddlewareHandler<RequestLogEnv> {
  return async function requestLog(c, next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      const line: RequestLogLine = {
        message: "request",
        request_id: c.var.requestId,
        method: c.req.method,
        route: routeOf(c),
        status: c.res.status,
      };
      if (c.var.modelId) line.model = c.var.modelId;
      const length = Number(c.req.header("Content-Length"));
      if (c.req.header("Content-Length") && Number.isSafeInteger(length) && length >= 0) line.request_bytes = length;
      if (c.var.errorCode) line.error = c.var.errorCode;
      if (c.var.errorDetail) line.detail = c.var.errorDetail;
      if (c.var.rateLimit) line.rate_limit = c.var.rateLimit;
      const ms = performance.now() - started;
      if (ms > 0) line.ms = Math.round(ms * 10) / 10;
      if (line.status >= 500) console.error(line);
      else console.log(line);
    }
  };
}
