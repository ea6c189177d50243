import { env } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RequestLogLine } from "../../src/http/middleware/request-log";
import { appWithEnv } from "../support/app-with-env";
import { testPicture } from "../support/png";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

/** A body that sends `head` at once, then `rest` after `pauseMs` (never, when pauseMs is Infinity), or breaks off. */
function trickle(head: Uint8Array, options: { pauseMs: number; rest?: Uint8Array; breakOff?: boolean }): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    async pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(head);
        return;
      }
      if (options.breakOff) {
        controller.error(new Error("connection reset by peer"));
        return;
      }
      if (options.pauseMs === Number.POSITIVE_INFINITY) return new Promise<void>(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
      if (options.rest) controller.enqueue(options.rest);
      controller.close();
    },
  });
}

function requestLines(spy: { mock: { calls: unknown[][] } }): RequestLogLine[] {
  return spy.mock.calls.flat().filter((arg): arg is RequestLogLine => (arg as RequestLogLine)?.message === "request");
}

describe("hostile and broken bodies get a JSON 4xx and release what they held", () => {
  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-hostile-v1" }));
  });
  afterEach(() => vi.restoreAllMocks());

  const image = testPicture(40, 1);
  const post = (body: BodyInit, headers: Record<string, string> = { "content-type": "image/png" }) =>
    ({ method: "POST", headers, body, duplex: "half" }) as RequestInit;

  it("answers a body that stalls 408 body_timeout, logged as the client's fault", async () => {
    const app = appWithEnv({ BODY_IDLE_TIMEOUT_SECONDS: "0.2" });
    const log = vi.spyOn(console, "log");
    const error = vi.spyOn(console, "error");
    const response = await app("/v1/classify", post(trickle(image.subarray(0, 100), { pauseMs: Number.POSITIVE_INFINITY })));
    expect(response.status).toBe(408);
    const body = await response.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("body_timeout");
    expect(body.error.message).toMatch(/sent nothing for 0.2 s/);
    expect(requestLines(log).map((l) => l.status)).toEqual([408]);
    expect(requestLines(error)).toEqual([]);
  });

  it("answers a body that keeps sending past its deadline 408", async () => {
    const app = appWithEnv({ BODY_IDLE_TIMEOUT_SECONDS: "5", BODY_DEADLINE_SECONDS: "0.3" });
    let chunks = 0;
    const slow = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        controller.enqueue(image.subarray(chunks, chunks + 1)); // one byte every 50 ms, never idle
        chunks++;
      },
    });
    const response = await app("/v1/classify", post(slow));
    expect(response.status).toBe(408);
    expect((await response.json<{ error: { message: string } }>()).error.message).toMatch(/took too long/);
    expect(chunks).toBeLessThan(20);
  });

  it("takes a body that pauses for less than the idle timeout", async () => {
    const app = appWithEnv({ BODY_IDLE_TIMEOUT_SECONDS: "2" });
    const response = await app("/v1/classify", post(trickle(image.subarray(0, 100), { pauseMs: 300, rest: image.subarray(100) })));
    expect(response.status).toBe(200);
  });

  it("answers a body that breaks off 400 incomplete_body, logged as a 4xx without a stack", async () => {
    const app = appWithEnv({});
    const log = vi.spyOn(console, "log");
    const error = vi.spyOn(console, "error");
    const heads = { "image/png": image.subarray(0, 100), "application/json": new TextEncoder().encode('{"image":"iVBORw0KGgo') };
    for (const [type, head] of Object.entries(heads)) {
      const response = await app("/v1/classify", post(trickle(head, { pauseMs: 0, breakOff: true }), { "content-type": type }));
      expect(response.status).toBe(400);
      expect((await response.json<{ error: { code: string } }>()).error.code).toBe("incomplete_body");
    }
    expect(requestLines(log).map((l) => l.error)).toEqual(["incomplete_body", "incomplete_body"]);
    expect(requestLines(error)).toEqual([]);
  });

  it("refuses top_k given as true, false, null, an array or an object", async () => {
    const app = appWithEnv({});
    const b64 = btoa(String.fromCharCode(...image));
    for (const topK of ["true", "false", "null", "[5]", '{"n":5}', '"true"', '""']) {
      const response = await app("/v1/classify", post(`{"image":"${b64}","top_k":${topK}}`, { "content-type": "application/json" }));
      expect(response.status, `top_k ${topK}`).toBe(400);
      expect((await response.json<{ error: { code: string } }>()).error.code).toBe("invalid_top_k");
    }
    for (const query of ["?top_k=true", "?top_k=abc", "?top_k=0x10"]) {
      const response = await app(`/v1/classify${query}`, post(image));
      expect(response.status, query).toBe(400);
    }
    expect((await app("/v1/classify?top_k=3", post(image))).status).toBe(200);
    const json = await app("/v1/classify", post(`{"image":"${b64}","top_k":2}`, { "content-type": "application/json" }));
    expect((await json.json<{ predictions: unknown[] }>()).predictions).toHaveLength(2);
  });

  it("does not echo a long path back in a 404", async () => {
    const app = appWithEnv({});
    const path = `/${"a".repeat(8000)}`;
    const response = await app(path);
    expect(response.status).toBe(404);
    const text = await response.text();
    expect(text.length).toBeLessThan(400);
    expect(text).toContain("8001 characters");
  });

  it("shows /readyz's memory figures to the operator only, once API keys are set", async () => {
    const open = await appWithEnv({})("/readyz");
    expect(await open.json()).toHaveProperty("memory");
    const keyed = appWithEnv({ API_KEYS: "s3cret" });
    const anonymous = await keyed("/readyz");
    expect(anonymous.status).toBe(200);
    const body = await anonymous.json<Record<string, unknown>>();
    expect(body.status).toBe("ready");
    expect(body).not.toHaveProperty("memory");
    const operator = await keyed("/readyz", { headers: { authorization: "Bearer s3cret" } });
    expect(await operator.json()).toHaveProperty("memory");
    expect((await keyed("/readyz", { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
  });
});
