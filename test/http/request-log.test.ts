import { env, SELF } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/http/app";
import type { RequestLogLine } from "../../src/http/middleware/request-log";
import { createModelHolder } from "../../src/model/served-model";
import { appWithEnv } from "../support/app-with-env";
import { testPicture } from "../support/png";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

/** Every request log line written while `run` runs, from console.log and console.error alike. */
async function logLines<T>(run: () => Promise<T>): Promise<{ result: T; lines: RequestLogLine[]; errors: RequestLogLine[] }> {
  const log = vi.spyOn(console, "log");
  const error = vi.spyOn(console, "error");
  const result = await run();
  const pick = (spy: typeof log) =>
    spy.mock.calls
      .flat()
      .filter((arg): arg is RequestLogLine => typeof arg === "object" && arg !== null && (arg as RequestLogLine).message === "request");
  const errors = pick(error);
  return { result, lines: [...pick(log), ...errors], errors };
}

describe("the request log", () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-log-v1" }));
  });

  it("writes one line per request with its id, method, route, status, model and size", async () => {
    const image = testPicture(24, 3);
    const { result: response, lines } = await logLines(() =>
      SELF.fetch("https://edge.test/v1/classify", {
        method: "POST",
        headers: { "content-type": "image/png", "content-length": String(image.length) },
        body: image,
      }),
    );
    expect(response.status).toBe(200);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      message: "request",
      request_id: response.headers.get("x-request-id"),
      method: "POST",
      route: "/v1/classify",
      status: 200,
      model: "tiny-log-v1",
      request_bytes: image.length,
    });
    expect(lines[0]).not.toHaveProperty("error");
    expect(JSON.parse(JSON.stringify(lines[0]))).toEqual(lines[0]);
  });

  it("names the error code a client got", async () => {
    const { lines } = await logLines(() =>
      SELF.fetch("https://edge.test/v1/classify", { method: "POST", headers: { "content-type": "text/plain" }, body: "hello" }),
    );
    expect(lines).toEqual([expect.objectContaining({ status: 415, error: "unsupported_media_type", route: "/v1/classify" })]);
  });

  it("logs route patterns, not paths, and no route for a 404", async () => {
    const { lines } = await logLines(async () => {
      await SELF.fetch("https://edge.test/samples/index.json");
      await SELF.fetch("https://edge.test/samples/no-such-sample.png");
      await SELF.fetch("https://edge.test/secret-admin-path?token=abc");
    });
    expect(lines.map((l) => [l.route, l.status])).toEqual([
      ["/samples/index.json", 200],
      ["/samples/:name", 404],
      [null, 404],
    ]);
    expect(JSON.stringify(lines)).not.toContain("secret-admin-path");
  });

  it("never logs an API key, right or wrong", async () => {
    const keys = ["right-key-0123456789", "other-key-abcdef"];
    const app = appWithEnv({ API_KEYS: keys.join(",") });
    const { lines } = await logLines(async () => {
      await app("/v1/models", { headers: { Authorization: `Bearer ${keys[0]}` } });
      await app("/v1/models", { headers: { Authorization: "Bearer wrong-key-9876543210" } });
    });
    expect(lines.map((l) => l.status)).toEqual([200, 401]);
    const text = JSON.stringify(lines);
    for (const secret of [...keys, "wrong-key-9876543210", "Bearer"]) expect(text).not.toContain(secret);
  });

  it("leaves the duration out when the clock did not advance, as on a deployed Worker", async () => {
    const app = appWithEnv({});
    await app("/readyz"); // load the model first: its R2 reads are not what this test is about
    vi.useFakeTimers({ toFake: ["performance"] });
    const { result: response, lines } = await logLines(() =>
      app("/v1/classify", { method: "POST", headers: { "content-type": "image/png" }, body: testPicture(24, 4) }),
    );
    expect(response.status).toBe(200);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toHaveProperty("ms");
  });
});

describe("the request log of a failure on the server's side", () => {
  afterEach(() => vi.restoreAllMocks());

  it("holds a 503's detail and code in one line, written as an error", async () => {
    await env.MODELS.delete("models/current.json"); // nothing published
    const app = appWithEnv({}); // a fresh app: no model loaded before
    const { result: response, lines, errors } = await logLines(() => app("/v1/models"));
    expect(response.status).toBe(503);
    const body = await response.json<{ error: { code: string } }>();
    expect(lines).toHaveLength(1);
    expect(errors).toEqual([
      expect.objectContaining({
        status: 503,
        error: body.error.code,
        route: "/v1/models",
        detail: expect.stringMatching(/ModelUnavailableError/),
      }),
    ]);
  });

  it("holds a 500's stack in the log line and nothing of it in the answer", async () => {
    const models = { ...createModelHolder(), acquire: () => Promise.reject(new TypeError("a bug deep in the model holder")) };
    const app = createApp({ models });
    const { result: response, errors } = await logLines(async () => app.request("https://edge.test/v1/models", {}, env));
    expect(response.status).toBe(500);
    const text = await response.text();
    expect(JSON.parse(text)).toMatchObject({ error: { code: "internal_error" } });
    expect(text).not.toContain("a bug deep");
    expect(errors).toEqual([
      expect.objectContaining({
        status: 500,
        error: "internal_error",
        detail: expect.stringContaining("TypeError: a bug deep in the model holder"),
      }),
    ]);
  });
});
