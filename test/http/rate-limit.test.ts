import { env } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RATE_LIMIT_PERIOD_SECONDS } from "../../src/config";
import { clientAddressKey } from "../../src/http/middleware/rate-limit";
import { appWithEnv, tightRateLimiter } from "../support/app-with-env";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

/** The tight limiter allows this many requests per client and window (vitest.config.ts). */
const TIGHT_LIMIT = 3;

/**
 * Miniflare's limiter, like Cloudflare's, counts in windows aligned to the clock: a window that rolls over
 * mid-test would refill it. Start near the beginning of one.
 */
async function freshWindow(): Promise<void> {
  const periodMs = RATE_LIMIT_PERIOD_SECONDS * 1000;
  const left = periodMs - (Date.now() % periodMs);
  if (left < 5_000) await new Promise((resolve) => setTimeout(resolve, left + 50));
}

let clients = 0;
/** A fresh client address per use, so tests never share a window. */
const nextAddress = () => `203.0.113.${++clients}`;

/** An empty image/png body: 400 empty_image, answered after the limiter has counted it, at no cost. */
const cheapClassify = (headers: Record<string, string>): RequestInit => ({
  method: "POST",
  headers: { "content-type": "image/png", ...headers },
  body: "",
});

describe("rate limits", () => {
  afterEach(() => vi.restoreAllMocks());

  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-rate-v1" }));
    await freshWindow();
  });

  it("answers 429 rate_limited with Retry-After once a client's window is spent", async () => {
    const app = appWithEnv({ RATE_LIMITER: tightRateLimiter() });
    const address = nextAddress();
    for (let i = 0; i < TIGHT_LIMIT; i++)
      expect((await app("/v1/classify", cheapClassify({ "CF-Connecting-IP": address }))).status).toBe(400);
    const refused = await app("/v1/classify", cheapClassify({ "CF-Connecting-IP": address }));
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe(String(RATE_LIMIT_PERIOD_SECONDS));
    expect(await refused.json()).toMatchObject({ error: { code: "rate_limited" } });
  });

  it("counts each address apart", async () => {
    const app = appWithEnv({ RATE_LIMITER: tightRateLimiter() });
    const spent = nextAddress();
    for (let i = 0; i <= TIGHT_LIMIT; i++) await app("/v1/classify", cheapClassify({ "CF-Connecting-IP": spent }));
    expect((await app("/v1/classify", cheapClassify({ "CF-Connecting-IP": spent }))).status).toBe(429);
    expect((await app("/v1/classify", cheapClassify({ "CF-Connecting-IP": nextAddress() }))).status).toBe(400);
  });

  it("counts a verified API key as itself, from whatever address it comes", async () => {
    const keys = [`key-a-${Date.now()}`, `key-b-${Date.now()}`];
    const app = appWithEnv({ RATE_LIMITER: tightRateLimiter(), API_KEYS: keys.join(",") });
    const withKey = (key: string) => cheapClassify({ Authorization: `Bearer ${key}`, "CF-Connecting-IP": nextAddress() });
    for (let i = 0; i < TIGHT_LIMIT; i++) expect((await app("/v1/classify", withKey(keys[0]!))).status).toBe(400);
    expect((await app("/v1/classify", withKey(keys[0]!))).status).toBe(429);
    expect((await app("/v1/classify", withKey(keys[1]!))).status).toBe(400);
  });

  it("refuses a missing key before counting, so strangers cannot spend a client's window", async () => {
    const app = appWithEnv({ RATE_LIMITER: tightRateLimiter(), API_KEYS: "k-0123456789" });
    const address = nextAddress();
    for (let i = 0; i < TIGHT_LIMIT * 2; i++)
      expect((await app("/v1/classify", cheapClassify({ "CF-Connecting-IP": address }))).status).toBe(401);
  });

  it("leaves the cheap routes unlimited", async () => {
    const app = appWithEnv({ RATE_LIMITER: tightRateLimiter() });
    const address = nextAddress();
    for (let i = 0; i < TIGHT_LIMIT * 2; i++) {
      for (const path of ["/v1/models", "/healthz", "/readyz"])
        expect((await app(path, { headers: { "CF-Connecting-IP": address } })).status).toBe(200);
    }
  });

  it("lets requests through when the limiter itself fails, and says so in the log line", async () => {
    const broken: RateLimit = { limit: () => Promise.reject(new Error("limiter down")) };
    const app = appWithEnv({ RATE_LIMITER: broken });
    const log = vi.spyOn(console, "log");
    expect((await app("/v1/classify", cheapClassify({ "CF-Connecting-IP": nextAddress() }))).status).toBe(400);
    expect(log).toHaveBeenCalledWith(expect.objectContaining({ message: "request", status: 400, rate_limit: "unavailable" }));
  });
});

describe("clientAddressKey", () => {
  it("counts IPv4 by address and IPv6 by its /64", () => {
    expect(clientAddressKey("198.51.100.7")).toBe("ip:198.51.100.7");
    expect(clientAddressKey("2001:db8:0:1:aaaa::1")).toBe("ip6:2001:db8:0:1::/64");
    expect(clientAddressKey("2001:DB8:0000:0001:bbbb:cccc:dddd:eeee")).toBe("ip6:2001:db8:0:1::/64");
    expect(clientAddressKey("2001:db8::1")).toBe("ip6:2001:db8:0:0::/64");
    expect(clientAddressKey("::ffff:192.0.2.1")).toBe("ip:192.0.2.1");
    expect(clientAddressKey(undefined)).toBe("ip:unknown");
  });
});
