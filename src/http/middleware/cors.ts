/**
 * CORS from the CORS_ORIGINS variable: comma-separated origins (`https://app.example`) or `*`. Empty or
 * unset means same origin only: no CORS headers at all, so browsers keep other sites' pages from reading
 * answers. Preflights (OPTIONS) are answered here, before the API-key check, with the methods and the
 * request headers (Authorization, Content-Type) the API takes. Hono's own `cors` does the header work;
 * this factory builds it from the variable, once per distinct value.
 */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";

export type CorsEnv = { Bindings: { CORS_ORIGINS?: string } };

export interface CorsOptions {
  /** Access-Control-Max-Age: how long a browser may reuse a preflight answer. */
  maxAgeSeconds: number;
  /** Response headers a page may read besides the CORS-safelisted ones. */
  exposeHeaders: string[];
}

/** `*`, or the distinct origins named, each as `new URL(entry).origin` spells it; entries that are not origins are dropped. */
export function parseCorsOrigins(value: string | undefined): "*" | string[] {
  const entries = (value ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  if (entries.includes("*")) return "*";
  const origins = new Set<string>();
  for (const entry of entries) {
    try {
      const origin = new URL(entry).origin;
      if (origin !== "null") origins.add(origin);
    } catch {
      // Not a URL: it can never equal a browser's Origin header.
    }
  }
  return [...origins];
}

export function corsFromEnv(options: CorsOptions): MiddlewareHandler<CorsEnv> {
  if (!Number.isInteger(options.maxAgeSeconds) || options.maxAgeSeconds < 0)
    throw new Error(`corsFromEnv: maxAgeSeconds must be a whole number >= 0, got ${options.maxAgeSeconds}`);
  let cached: { source: string; handler: MiddlewareHandler | undefined } | undefined;
  const handlerFor = (source: string): MiddlewareHandler | undefined => {
    if (cached?.source === source) return cached.handler;
    const origin = parseCorsOrigins(source);
    const handler =
      origin.length === 0
        ? undefined
        : cors({
            origin,
            allowMethods: ["GET", "POST", "OPTIONS"],
            allowHeaders: ["Authorization", "Content-Type"],
            exposeHeaders: options.exposeHeaders,
            maxAge: options.maxAgeSeconds,
          });
    cached = { source, handler };
    return handler;
  };

  return async function corsFromEnv(c, next) {
    const handler = handlerFor(c.env.CORS_ORIGINS ?? "");
    if (!handler) return next();
    return handler(c, next);
  };
}
