/**
 * Rate limits through Cloudflare's Workers Rate Limiting binding (RATE_LIMITER, `[[ratelimits]]` in
 * wrangler.toml; https://developers.cloudflare.com/workers/runtime-apis/bindings/rate-limit/). Each request
 * takes one token from its client's window: the API key's digest when the key was verified (`c.var.clientKey`,
 * set by the api-key middleware), else the `CF-Connecting-IP` address Cloudflare sets. Out of tokens:
 * 429 `rate_limited` with `Retry-After`. The platform counts per location and approximately: a brake on
 * spending, not an exact quota.
 *
 * Without the binding (an Env that leaves it out) requests pass. If the binding itself fails, the request
 * passes too and the log line says so (`rate_limit: "unavailable"`): refusing every request because the
 * counter is down would turn its outage into ours.
 */
import type { MiddlewareHandler } from "hono";
import { errorResponse } from "../errors";

export type RateLimitEnv = {
  Bindings: { RATE_LIMITER?: RateLimit };
  Variables: { clientKey?: string; rateLimit?: "unavailable" };
};

export interface RateLimitOptions {
  /** Retry-After on a 429: the binding's period, the longest until the client's window rolls over. */
  retryAfterSeconds: number;
}

/**
 * The client an unauthenticated request is counted against. IPv6 addresses count by their /64: one
 * subscriber usually holds a whole /64 and could otherwise take a fresh address per request.
 */
export function clientAddressKey(address: string | undefined): string {
  if (!address) return "ip:unknown";
  if (!address.includes(":")) return `ip:${address}`;
  // IPv4-mapped IPv6 (::ffff:192.0.2.1) is the IPv4 client.
  if (address.includes(".")) return `ip:${address.slice(address.lastIndexOf(":") + 1)}`;
  const [head = "", tail = ""] = address.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = address.includes("::") ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right] : left;
  return `ip6:${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

export function rateLimit(options: RateLimitOptions): MiddlewareHandler<RateLimitEnv> {
  if (!Number.isInteger(options.retryAfterSeconds) || options.retryAfterSeconds <= 0) {
    throw new Error(`rateLimit: retryAfterSeconds must be a whole number > 0, got ${options.retryAfterSeconds}`);
  }
  const retryAfter = String(options.retryAfterSeconds);

  return async function rateLimit(c, next) {
    const limiter = c.env.RATE_LIMITER;
    if (!limiter) return next();
    const key = c.var.clientKey ?? clientAddressKey(c.req.header("CF-Connecting-IP"));
    let success = true;
    try {
      ({ success } = await limiter.limit({ key }));
    } catch {
      c.set("rateLimit", "unavailable");
    }
    if (!success) {
      return errorResponse(c, 429, "rate_limited", `Too many requests from this client; try again in ${retryAfter} s.`, {
        "Retry-After": retryAfter,
      });
    }
    await next();
  };
}
