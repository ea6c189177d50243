/**
 * API keys: when the secret API_KEYS holds any (comma-separated), a request needs
 * `Authorization: Bearer <one of them>`, else 401 `unauthorized` with `WWW-Authenticate: Bearer`.
 * With API_KEYS unset or blank the routes stay open: a local `npm start` needs no key.
 *
 * Keys are compared as SHA-256 digests with `crypto.subtle.timingSafeEqual`, against every configured key
 * without stopping at a match, so the answer's timing tells nothing about how much of a key was right
 * (digests also give the comparison the equal lengths it needs). The verified key's digest, never the key,
 * is left in `c.var.clientKey` for the rate limiter.
 *
 * `optional`: a request without a key passes too, unverified (no `clientKey`); a wrong key is still 401.
 * For routes whose answer is public but whose detail is for the operator (/readyz's memory figures).
 */
import type { MiddlewareHandler } from "hono";
import { errorResponse } from "../errors";

export type ApiKeyEnv = {
  Bindings: { API_KEYS?: string };
  Variables: { clientKey?: string };
};

export interface ApiKeyOptions {
  /** Named in `WWW-Authenticate: Bearer realm="..."`. */
  realm: string;
  /** Let requests without a key through, unverified. */
  optional?: boolean;
}

const BEARER = /^Bearer +([^\s]+) *$/i;

async function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
}

const hex = (digest: ArrayBuffer): string => [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** The configured keys: comma-separated, trimmed, blanks dropped. */
export function parseApiKeys(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((key) => key.trim())
    .filter((key) => key.length > 0);
}

export function apiKey(options: ApiKeyOptions): MiddlewareHandler<ApiKeyEnv> {
  if (!/^[\w .-]+$/.test(options.realm)) throw new Error(`apiKey: realm must be plain text, got ${JSON.stringify(options.realm)}`);
  const challenge = `Bearer realm="${options.realm}"`;
  // The secret is the same for every request of an isolate: hash the keys once per distinct value.
  let cached: { source: string; digests: Promise<ArrayBuffer[]> } | undefined;
  const digestsOf = (source: string): Promise<ArrayBuffer[]> => {
    if (cached?.source !== source) cached = { source, digests: Promise.all(parseApiKeys(source).map(sha256)) };
    return cached.digests;
  };

  return async function apiKey(c, next) {
    const source = c.env.API_KEYS ?? "";
    if (parseApiKeys(source).length === 0) return next();
    const token = BEARER.exec(c.req.header("Authorization") ?? "")?.[1];
    if (token === undefined) {
      if (options.optional) return next();
      return errorResponse(c, 401, "unauthorized", "This route needs an API key: send it as `Authorization: Bearer <key>`.", {
        "WWW-Authenticate": challenge,
      });
    }
    const presented = await sha256(token);
    let match = false;
    for (const digest of await digestsOf(source)) match = crypto.subtle.timingSafeEqual(digest, presented) || match;
    if (!match) {
      return errorResponse(c, 401, "unauthorized", "The API key is not valid.", {
        "WWW-Authenticate": `${challenge}, error="invalid_token"`,
      });
    }
    c.set("clientKey", `key:${hex(presented)}`);
    await next();
  };
}
