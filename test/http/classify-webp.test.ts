import { env, SELF } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";
import { webpFixture } from "../image/webp-fixtures";

const URL_CLASSIFY = "https://edge.test/v1/classify";

async function postWebp(bytes: Uint8Array): Promise<Response> {
  return SELF.fetch(URL_CLASSIFY, { method: "POST", headers: { "content-type": "image/webp" }, body: bytes });
}

describe("POST /v1/classify with a WebP body", () => {
  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-webp-v1" }));
  });

  it.each(["webp-lossy.webp", "webp-lossless.webp", "webp-lossy-alpha.webp", "webp-12mp.webp", "parity-large.webp"])(
    "%s is classified (200)",
    async (name) => {
      const response = await postWebp(webpFixture(name));
      expect(response.status).toBe(200);
      const body = await response.json<{ model: string; predictions: { label: string; score: number }[] }>();
      expect(body.model).toBe("tiny-webp-v1");
      expect(body.predictions.length).toBeGreaterThan(0);
      expect(body.predictions.reduce((sum, p) => sum + p.score, 0)).toBeLessThanOrEqual(1 + 1e-6);
    },
  );

  it("a multipart batch of two WebPs gets an answer for each", async () => {
    const form = new FormData();
    for (const name of ["webp-lossy.webp", "webp-lossless-alpha.webp"])
      form.append("image", new File([webpFixture(name)], name, { type: "image/webp" }));
    const response = await SELF.fetch(URL_CLASSIFY, { method: "POST", body: form });
    expect(response.status).toBe(200);
    const body = await response.json<{ results: unknown[] }>();
    expect(body.results).toHaveLength(2);
  });

  it.each([
    ["webp-animated.webp", 415, "unsupported_media_type", "Animated WebP images are not supported. Send a still JPEG, PNG or WebP image."],
    ["webp-forged-huge.webp", 413, "image_too_large", "The WebP is 16383x16383 (268402689 pixels); the limit is 16000000 pixels."],
    ["webp-corrupt.webp", 422, "undecodable_image", "The WebP has a corrupt bitstream."],
    ["webp-vp8x-no-image.webp", 422, "undecodable_image", "The WebP has no image data."],
  ])("%s is refused with %i and a JSON error", async (name, status, code, message) => {
    const response = await postWebp(webpFixture(name));
    expect(response.status).toBe(status);
    expect(await response.json()).toEqual({ error: { code, message } });
  });
});
