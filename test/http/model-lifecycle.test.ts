import * as tf from "@tensorflow/tfjs-core";
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/http/app";
import { createModelHolder } from "../../src/model/served-model";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";
import { testPicture } from "../support/png";

/** A fresh app (fresh isolate state) over the real local R2 bucket, checking the pointer on every request. */
function freshApp() {
  const models = createModelHolder();
  const app = createApp({ models });
  const fetch = (path: string, init?: RequestInit) => app.request(`https://edge.test${path}`, init, { ...env, POINTER_CHECK_SECONDS: "0" });
  const classify = () => fetch("/v1/classify", { method: "POST", headers: { "content-type": "image/png" }, body: testPicture(24, 1) });
  return { models, fetch, classify };
}

async function errorCode(response: Response): Promise<string> {
  return (await response.json<{ error: { code: string } }>()).error.code;
}

describe("the model store and its lifecycle", () => {
  it("answers 503 model_not_found with Retry-After when nothing is published, while /healthz stays 200", async () => {
    const { fetch, classify } = freshApp();
    const response = await classify();
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await errorCode(response)).toBe("model_not_found");
    expect((await fetch("/healthz")).status).toBe(200);
    expect((await fetch("/readyz")).status).toBe(503);
  });

  it("answers 503 model_not_found when the pointer names a package that is not there", async () => {
    await env.MODELS.put("models/current.json", JSON.stringify({ id: "ghost-v1" }));
    const response = await freshApp().classify();
    expect(response.status).toBe(503);
    expect(await errorCode(response)).toBe("model_not_found");
  });

  it("refuses to serve weights that fail their SHA-256 check, telling the client without R2 keys or hashes", async () => {
    const pkg = await makeTinyPackage({ id: "tampered-v1" });
    const weights = pkg.weights.slice();
    weights[weights.length - 3]! ^= 0xff; // same length, one byte changed
    await publishToBucket(env.MODELS, { manifest: pkg.manifest, weights });
    const response = await freshApp().classify();
    expect(response.status).toBe(503);
    const body = await response.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("model_corrupt");
    expect(body.error.message).toBe("The published model failed its integrity check.");
    expect(body.error.message).not.toMatch(/models\/|[0-9a-f]{64}/);
  });

  it("refuses a truncated weights file", async () => {
    const pkg = await makeTinyPackage({ id: "truncated-v1" });
    await publishToBucket(env.MODELS, { manifest: pkg.manifest, weights: pkg.weights.slice(0, 100) });
    const response = await freshApp().classify();
    expect(response.status).toBe(503);
    expect(await errorCode(response)).toBe("model_corrupt");
  });

  it("refuses a manifest that breaks the schema, saying what is wrong", async () => {
    const pkg = await makeTinyPackage({ id: "badmanifest-v1" });
    await publishToBucket(env.MODELS, { manifest: { ...pkg.manifest, labels: ["only-one"] }, weights: pkg.weights });
    const response = await freshApp().classify();
    expect(response.status).toBe(503);
    const body = await response.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("model_corrupt");
    expect(body.error.message).toMatch(/one unit per label/);
  });

  it("retries a failed load on a later request", async () => {
    const { classify, fetch } = freshApp();
    expect((await classify()).status).toBe(503);
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "late-v1" }));
    expect((await classify()).status).toBe(200);
    expect((await fetch("/readyz")).status).toBe(200);
  });

  it("loads the model once for concurrent first requests", async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "shared-v1" }));
    const { models, classify } = freshApp();
    const responses = await Promise.all(Array.from({ length: 6 }, classify));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(models.loadCount).toBe(1);
  });

  it("switches to a newly published package, and keeps the old one when the new one is corrupt", async () => {
    const { classify } = freshApp();
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "first-v1" }));
    expect((await (await classify()).json<{ model: string }>()).model).toBe("first-v1");

    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "second-v1", seed: 2 }));
    expect((await (await classify()).json<{ model: string }>()).model).toBe("second-v1");

    const broken = await makeTinyPackage({ id: "third-v1", seed: 3 });
    await publishToBucket(env.MODELS, { manifest: broken.manifest, weights: broken.weights.slice(0, 50) });
    const response = await classify();
    expect(response.status).toBe(200);
    expect((await response.json<{ model: string }>()).model).toBe("second-v1");
  });

  it("leaks no tfjs tensors across requests, good or bad, when tfjs runs the convolutions", async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "leakcheck-v1", convolutions: "fp32" }));
    const { classify, fetch } = freshApp();
    expect((await classify()).status).toBe(200); // loads the model: its weights stay as tensors
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      expect((await classify()).status).toBe(200);
      const broken = await fetch("/v1/classify", {
        method: "POST",
        headers: { "content-type": "image/png" },
        body: testPicture(24, i).slice(0, 70),
      });
      expect(broken.status).toBe(422);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("describes the served model at /v1/models", async () => {
    const pkg = await makeTinyPackage({ id: "described-v1" });
    await publishToBucket(env.MODELS, pkg);
    const response = await freshApp().fetch("/v1/models");
    expect(response.status).toBe(200);
    const body = await response.json<{ id: string; input: unknown; labels: string[] }>();
    expect(body.id).toBe("described-v1");
    expect(body.input).toEqual(pkg.manifest.input);
    expect(body.labels).toEqual(pkg.manifest.labels);
  });
});
