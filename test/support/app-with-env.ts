/**
 * Runs a request through a fresh app (src/http/app.ts) inside workerd with the test Worker's real bindings
 * (local R2, Miniflare's rate limiters) plus the variables or secrets a test sets: how the access-control
 * tests turn on API_KEYS or CORS_ORIGINS, which the shared test Worker leaves off (vitest.config.ts).
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { createApp } from "../../src/http/app";
import type { MemoryBudget } from "../../src/memory/budget";
import type { Bindings } from "../../src/http/env";

export type TestApp = (input: string, init?: RequestInit) => Promise<Response>;

/** `budget`: the app's memory ledger, for tests that fill or watch it. */
export function appWithEnv(overrides: Partial<Bindings>, options: { budget?: MemoryBudget } = {}): TestApp {
  const app = createApp(options);
  const bindings: Bindings = { ...env, ...overrides };
  return async (input, init) => {
    const ctx = createExecutionContext();
    const response = await app.fetch(new Request(new URL(input, "https://edge.test"), init), bindings, ctx);
    await waitOnExecutionContext(ctx);
    return response;
  };
}

/** The limiter that runs out after 3 requests per client and minute (vitest.config.ts). */
export function tightRateLimiter(): RateLimit {
  return (env as unknown as { TIGHT_RATE_LIMITER: RateLimit }).TIGHT_RATE_LIMITER;
}
