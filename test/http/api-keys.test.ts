import { env, SELF } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { parseApiKeys } from "../../src/http/middleware/api-key";
import { appWithEnv } from "../support/app-with-env";
import { testPicture } from "../support/png";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

const KEYS = " first-key-0123456789 , second-key-abcdef ,, ";
const classify = (headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "image/png", ...headers },
  body: testPicture(24, 1),
});

interface ErrorBody {
  error: { code: string; message: string };
}

describe("API keys", () => {
  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-keys-v1" }));
  });

  it("leaves the API open when API_KEYS is unset or blank", async () => {
    expect((await SELF.fetch("https://edge.test/v1/models")).status).toBe(200);
    for (const blank of ["", "  ", " , ,"]) {
      const app = appWithEnv({ API_KEYS: blank });
      expect((await app("/v1/models")).status).toBe(200);
      expect((await app("/v1/classify", classify())).status).toBe(200);
    }
  });

  it("answers 401 unauthorized with WWW-Authenticate: Bearer when the key is missing", async () => {
    const app = appWithEnv({ API_KEYS: KEYS });
    for (const [path, init] of [
      ["/v1/classify", classify()],
      ["/v1/models", undefined],
      ["/v1/models/tiny-keys-v1/thumbnails.png", undefined],
    ] as const) {
      const response = await app(path, init);
      expect(response.status).toBe(401);
      expect(response.headers.get("content-type")).toMatch(/application\/json/);
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer realm="alexnet-edge"/);
      const body = await response.json<ErrorBody>();
      expect(body.error.code).toBe("unauthorized");
      expect(body.error.message).toMatch(/Authorization: Bearer/);
    }
  });

  it("refuses a wrong key, a prefix of a right one, a right one under another scheme, and an empty bearer", async () => {
    const app = appWithEnv({ API_KEYS: KEYS });
    for (const authorization of [
      "Bearer wrong-key",
      "Bearer first-key",
      "Bearer first-key-0123456789x",
      "Basic first-key-0123456789",
      "Bearer ",
      "first-key-0123456789",
    ]) {
      const response = await app("/v1/classify", classify({ Authorization: authorization }));
      expect(response.status, authorization).toBe(401);
      expect((await response.json<ErrorBody>()).error.code).toBe("unauthorized");
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer /);
    }
  });

  it("accepts every configured key, as trimmed, on both guarded routes", async () => {
    const app = appWithEnv({ API_KEYS: KEYS });
    for (const key of ["first-key-0123456789", "second-key-abcdef"]) {
      const classified = await app("/v1/classify", classify({ Authorization: `Bearer ${key}` }));
      expect(classified.status).toBe(200);
      expect((await classified.json<{ model: string }>()).model).toBe("tiny-keys-v1");
      expect((await app("/v1/models", { headers: { Authorization: `bearer ${key}` } })).status).toBe(200);
    }
  });

  it("keeps the demo page, health checks and the API description open", async () => {
    const app = appWithEnv({ API_KEYS: KEYS });
    for (const path of ["/", "/healthz", "/readyz", "/openapi.json", "/samples/index.json"]) {
      expect((await app(path)).status, path).toBe(200);
    }
  });

  it("never echoes a configured key in an answer", async () => {
    const app = appWithEnv({ API_KEYS: KEYS });
    const response = await app("/v1/classify", classify({ Authorization: "Bearer first-key-012345678" }));
    const text = (await response.text()) + [...response.headers].join(" ");
    expect(text).not.toContain("first-key-0123456789");
    expect(text).not.toContain("second-key-abcdef");
  });

  it("describes the bearer scheme in OpenAPI on the guarded routes only", async () => {
    const doc = await (await SELF.fetch("https://edge.test/openapi.json")).json<{
      components: { securitySchemes: Record<string, { type: string; scheme: string }> };
      paths: Record<string, Record<string, { security?: Record<string, string[]>[]; responses: Record<string, unknown> }>>;
    }>();
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.paths["/v1/classify"]!.post!.security).toEqual([{ apiKey: [] }]);
    expect(doc.paths["/v1/models"]!.get!.security).toEqual([{ apiKey: [] }]);
    expect(doc.paths["/v1/models/{id}/thumbnails.png"]!.get!.security).toEqual([{ apiKey: [] }]);
    expect(doc.paths["/v1/classify"]!.post!.responses).toHaveProperty("401");
    expect(doc.paths["/healthz"]!.get!.security).toBeUndefined();
    expect(doc.paths["/readyz"]!.get!.security).toBeUndefined();
  });
});

describe("parseApiKeys", () => {
  it("splits on commas, trims, and drops blanks", () => {
    expect(parseApiKeys(KEYS)).toEqual(["first-key-0123456789", "second-key-abcdef"]);
    expect(parseApiKeys(undefined)).toEqual([]);
    expect(parseApiKeys(" , ")).toEqual([]);
  });
});
