import { env, SELF } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { CORS_MAX_AGE_SECONDS } from "../../src/config";
import { parseCorsOrigins } from "../../src/http/middleware/cors";
import { appWithEnv } from "../support/app-with-env";
import { testPicture } from "../support/png";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

const APP_ORIGIN = "https://app.example";
const preflight = (origin: string, headers = "authorization,content-type"): RequestInit => ({
  method: "OPTIONS",
  headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers },
});
const classify = (origin: string, extra: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { Origin: origin, "content-type": "image/png", ...extra },
  body: testPicture(24, 2),
});

describe("CORS", () => {
  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-cors-v1" }));
  });

  it("sends no CORS headers when CORS_ORIGINS is empty: same origin only", async () => {
    const answer = await SELF.fetch("https://edge.test/v1/classify", classify(APP_ORIGIN));
    expect(answer.status).toBe(200);
    expect(answer.headers.get("access-control-allow-origin")).toBeNull();
    const options = await SELF.fetch("https://edge.test/v1/classify", preflight(APP_ORIGIN));
    expect(options.headers.get("access-control-allow-origin")).toBeNull();
    expect(options.headers.get("access-control-allow-methods")).toBeNull();
  });

  it("answers a preflight from a listed origin with the methods, Authorization, Content-Type and a max-age", async () => {
    const app = appWithEnv({ CORS_ORIGINS: `https://other.example, ${APP_ORIGIN}/` });
    const response = await app("/v1/classify", preflight(APP_ORIGIN));
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(response.headers.get("access-control-allow-methods")?.split(",")).toEqual(expect.arrayContaining(["GET", "POST"]));
    expect(response.headers.get("access-control-allow-headers")?.toLowerCase().split(",")).toEqual(["authorization", "content-type"]);
    expect(response.headers.get("access-control-max-age")).toBe(String(CORS_MAX_AGE_SECONDS));
    expect(response.headers.get("vary")).toMatch(/Origin/);
  });

  it("answers a preflight before the key check, which a preflight cannot pass", async () => {
    const app = appWithEnv({ CORS_ORIGINS: APP_ORIGIN, API_KEYS: "k-0123456789" });
    expect((await app("/v1/classify", preflight(APP_ORIGIN))).status).toBe(204);
  });

  it("lets a listed origin read answers and their timing and id headers", async () => {
    const app = appWithEnv({ CORS_ORIGINS: APP_ORIGIN });
    const response = await app("/v1/classify", classify(APP_ORIGIN));
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(response.headers.get("access-control-expose-headers")?.split(",")).toEqual(
      expect.arrayContaining(["Server-Timing", "X-Request-Id", "Retry-After", "WWW-Authenticate"]),
    );
  });

  it("gives an origin that is not listed no CORS headers", async () => {
    const app = appWithEnv({ CORS_ORIGINS: APP_ORIGIN });
    for (const origin of ["https://evil.example", "http://app.example", "https://app.example.evil.example"]) {
      const response = await app("/v1/classify", classify(origin));
      expect(response.headers.get("access-control-allow-origin"), origin).toBeNull();
      expect((await app("/v1/classify", preflight(origin))).headers.get("access-control-allow-origin"), origin).toBeNull();
    }
  });

  it("lets any origin call the API when CORS_ORIGINS is *", async () => {
    const app = appWithEnv({ CORS_ORIGINS: "*" });
    const response = await app("/v1/models", { headers: { Origin: "https://anywhere.example" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("puts CORS headers on a 401, so a page on a listed origin can read why", async () => {
    const app = appWithEnv({ CORS_ORIGINS: APP_ORIGIN, API_KEYS: "k-0123456789" });
    const response = await app("/v1/classify", classify(APP_ORIGIN));
    expect(response.status).toBe(401);
    expect(response.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(response.headers.get("access-control-expose-headers")).toMatch(/WWW-Authenticate/);
  });
});

describe("parseCorsOrigins", () => {
  it("reads origins as browsers send them, and * as any", () => {
    expect(parseCorsOrigins("")).toEqual([]);
    expect(parseCorsOrigins(undefined)).toEqual([]);
    expect(parseCorsOrigins(" https://A.example/ , https://a.example,http://localhost:8820 ")).toEqual([
      "https://a.example",
      "http://localhost:8820",
    ]);
    expect(parseCorsOrigins("https://a.example, *")).toBe("*");
  });

  it("drops entries that are not origins, since no browser could send them", () => {
    expect(parseCorsOrigins("app.example, not a url, https://ok.example")).toEqual(["https://ok.example"]);
  });
});
