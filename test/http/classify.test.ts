import { env, SELF } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";
import { chunk, encodePng, ihdr, pngOf, scanlines, testPicture, toBase64, zlibStored } from "../support/png";

const URL_CLASSIFY = "https://edge.test/v1/classify";

async function postImage(bytes: Uint8Array, query = "", type = "image/png"): Promise<Response> {
  return SELF.fetch(URL_CLASSIFY + query, { method: "POST", headers: { "content-type": type }, body: bytes });
}

interface Answer {
  model: string;
  predictions: { label: string; score: number }[];
}

describe("POST /v1/classify through the Worker", () => {
  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-http-v1" }));
  });

  it("classifies raw image bytes into labels sorted by score", async () => {
    const response = await postImage(testPicture(40, 1));
    expect(response.status).toBe(200);
    const body = await response.json<Answer>();
    expect(body.model).toBe("tiny-http-v1");
    expect(body.predictions).toHaveLength(5);
    const scores = body.predictions.map((p) => p.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(scores.reduce((a, b) => a + b)).toBeCloseTo(1, 4);
  });

  it("reports a request id, and timings only for phases the clock saw (test/http/server-timing.test.ts)", async () => {
    const response = await postImage(testPicture(24, 2));
    expect(response.headers.get("server-timing") ?? "").toMatch(/^((decode|preprocess|inference);dur=\d+\.\d(, |$))*$/);
    expect(response.headers.get("x-request-id")).toMatch(/^[\w-]{8,}$/);
  });

  it("honours top_k from the query", async () => {
    const body = await (await postImage(testPicture(24, 3), "?top_k=2")).json<Answer>();
    expect(body.predictions).toHaveLength(2);
  });

  it("answers the same for a JSON array of bytes, base64 and a data URL as for raw bytes", async () => {
    const image = testPicture(30, 4);
    const raw = await (await postImage(image)).json<Answer>();
    const bodies = [{ image: [...image] }, { image: toBase64(image) }, { image: `data:image/png;base64,${toBase64(image)}`, top_k: 5 }];
    for (const body of bodies) {
      const response = await SELF.fetch(URL_CLASSIFY, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual(raw);
    }
  });

  // Eight images run their dense layers as two chunks of four, three as four with a blank row, two one by
  // one (src/engine/dense-int8.ts): each must still score exactly as it does alone.
  it.each([2, 3, 8])("classifies a multipart batch of %i in input order, each exactly as it would be alone", async (count) => {
    const images = Array.from({ length: count }, (_, s) => testPicture(28, s + 1));
    const form = new FormData();
    for (const image of images) form.append("image", new File([image], "x.png", { type: "image/png" }));
    form.append("top_k", "3");
    const response = await SELF.fetch(URL_CLASSIFY, { method: "POST", body: form });
    expect(response.status).toBe(200);
    const body = await response.json<{ model: string; results: { predictions: Answer["predictions"] }[] }>();
    expect(body.results).toHaveLength(count);
    for (const [i, image] of images.entries()) {
      const alone = await (await postImage(image, "?top_k=3")).json<Answer>();
      expect(body.results[i]!.predictions).toEqual(alone.predictions);
    }
  });
});

describe("bad requests get a JSON error with the right status", () => {
  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-http-v1" }));
  });

  async function expectError(response: Response, status: number, code: string) {
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toMatch(/application\/json/);
    const body = await response.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(10);
    expect(JSON.stringify(body)).not.toMatch(/at \w+ \(|\.ts:\d+/); // no stack traces
  }

  for (const topK of ["0", "-1", "abc", "1.5"]) {
    it(`400 invalid_top_k for top_k=${topK}`, async () => {
      await expectError(await postImage(testPicture(24, 1), `?top_k=${topK}`), 400, "invalid_top_k");
    });
  }

  it("400 invalid_json for a body that is not JSON", async () => {
    await expectError(
      await SELF.fetch(URL_CLASSIFY, { method: "POST", headers: { "content-type": "application/json" }, body: "{image:" }),
      400,
      "invalid_json",
    );
  });

  it("400 invalid_base64 for an image string that is not base64", async () => {
    await expectError(
      await SELF.fetch(URL_CLASSIFY, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ image: "not base64!!" }),
      }),
      400,
      "invalid_base64",
    );
  });

  it("400 invalid_body for JSON without an image", async () => {
    await expectError(
      await SELF.fetch(URL_CLASSIFY, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ picture: [1, 2] }),
      }),
      400,
      "invalid_body",
    );
  });

  it("400 empty_image for an empty body", async () => {
    await expectError(await postImage(new Uint8Array()), 400, "empty_image");
  });

  it("415 for a content type that carries no image", async () => {
    await expectError(await postImage(testPicture(24, 1), "", "text/plain"), 415, "unsupported_media_type");
  });

  it("415 for image bytes that are neither JPEG nor PNG", async () => {
    const gif = new TextEncoder().encode("GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    await expectError(await postImage(gif, "", "image/gif"), 415, "unsupported_media_type");
  });

  it("413 for a body over the size limit", async () => {
    await expectError(await postImage(new Uint8Array(26 * 1024 * 1024)), 413, "body_too_large");
  });

  it("413 for an image whose header claims too many pixels, before decoding it", async () => {
    const forged = encodePng(2, 2, new Uint8Array(12), 3, { width: 65000, height: 65000 });
    await expectError(await postImage(forged), 413, "image_too_large");
  });

  it("413 for a batch with too many images", async () => {
    const form = new FormData();
    for (let i = 0; i < 9; i++) form.append("image", new File([testPicture(8, i)], "x.png"));
    await expectError(await SELF.fetch(URL_CLASSIFY, { method: "POST", body: form }), 413, "too_many_images");
  });

  it("422 for a PNG that cannot be decoded, and the next request still works", async () => {
    const broken = testPicture(24, 1).slice(0, 60);
    await expectError(await postImage(broken), 422, "undecodable_image");
    expect((await postImage(testPicture(24, 1))).status).toBe(200);
  });

  it("422 naming the image when one image of a batch is broken", async () => {
    const form = new FormData();
    form.append("image", new File([testPicture(24, 1)], "a.png"));
    form.append("image", new File([testPicture(24, 2).slice(0, 60)], "b.png"));
    const response = await SELF.fetch(URL_CLASSIFY, { method: "POST", body: form });
    expect(response.status).toBe(422);
    expect((await response.json<{ error: { message: string } }>()).error.message).toMatch(/^Image 2 of the batch: /);
  });

  it("answers a burst of concurrent good and bad requests, each with its own status", async () => {
    const good = () => postImage(testPicture(32, 5));
    const broken = () => postImage(testPicture(32, 5).slice(0, 80));
    const notImage = () => postImage(new TextEncoder().encode("plain text"), "", "image/png");
    const kinds = [good, broken, notImage];
    const responses = await Promise.all(Array.from({ length: 24 }, (_, i) => kinds[i % 3]!()));
    const statuses = responses.map((r) => r.status);
    expect(statuses).toEqual(Array.from({ length: 24 }, (_, i) => [200, 422, 415][i % 3]));
    const answers = await Promise.all(responses.filter((r) => r.status === 200).map((r) => r.json<Answer>()));
    for (const a of answers) expect(a).toEqual(answers[0]);
  });

  it("422 for the issue's PNG whose second IHDR is 20000x20000, answered at once", async () => {
    const started = Date.now();
    const bomb = pngOf(
      chunk("IHDR", ihdr(1, 1)),
      chunk("IHDR", ihdr(20000, 20000)),
      chunk("IDAT", zlibStored(scanlines(1, 3))),
      chunk("IEND", new Uint8Array()),
    );
    await expectError(await postImage(bomb), 422, "undecodable_image");
    expect(Date.now() - started).toBeLessThan(5000); // before the fix: a 1.2 GB raster, ~30 s
  });

  it("400 invalid_image_bytes for a JSON byte value outside 0-255, naming where", async () => {
    const response = await SELF.fetch(URL_CLASSIFY, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"image":[137,80,300]}',
    });
    await expectError(response.clone(), 400, "invalid_image_bytes");
    expect((await response.json<{ error: { message: string } }>()).error.message).toMatch(/^image\[2\] is 300/);
  });

  it("400 invalid_body for a JSON key the published schema does not have", async () => {
    const body = JSON.stringify({ image: toBase64(testPicture(24, 1)), model: "@cf/microsoft/resnet-50" });
    await expectError(
      await SELF.fetch(URL_CLASSIFY, { method: "POST", headers: { "content-type": "application/json" }, body }),
      400,
      "invalid_body",
    );
  });

  it("413 for a WebP without Content-Length that runs past the gathered image limit while streaming", async () => {
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 6 * 1024 * 1024) return controller.close();
        const chunk = new Uint8Array(64 * 1024).fill(0x20);
        if (sent === 0) chunk.set([0x52, 0x49, 0x46, 0x46, 0, 0, 0x60, 0, 0x57, 0x45, 0x42, 0x50]); // RIFF, 6 MiB, WEBP
        controller.enqueue(chunk);
        sent += 64 * 1024;
      },
    });
    const response = await SELF.fetch(URL_CLASSIFY, { method: "POST", headers: { "content-type": "image/webp" }, body: stream });
    await expectError(response, 413, "image_too_large");
    expect(sent).toBeLessThan(6 * 1024 * 1024);
  });

  it("415 for a body that is no image, from its first bytes, without reading the rest", async () => {
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 20 * 1024 * 1024) return controller.close();
        controller.enqueue(new Uint8Array(64 * 1024).fill(0x41));
        sent += 64 * 1024;
      },
    });
    const response = await SELF.fetch(URL_CLASSIFY, { method: "POST", headers: { "content-type": "image/jpeg" }, body: stream });
    await expectError(response, 415, "unsupported_media_type");
    expect(sent).toBeLessThan(1024 * 1024);
  });

  it("top_k is checked by the schema /openapi.json publishes, in the query, the form and the JSON body", async () => {
    const doc = await (await SELF.fetch("https://edge.test/openapi.json")).json<{ paths: Record<string, Record<string, unknown>> }>();
    const text = JSON.stringify(doc.paths["/v1/classify"]);
    expect(text).toMatch(/"top_k":\{[^}]*"maximum":1000/);
    const form = new FormData();
    form.append("image", new File([testPicture(24, 1)], "a.png"));
    form.append("top_k", "1001");
    const json = JSON.stringify({ image: toBase64(testPicture(24, 1)), top_k: 1001 });
    const answers = [
      await postImage(testPicture(24, 1), "?top_k=1001"),
      await SELF.fetch(URL_CLASSIFY, { method: "POST", body: form }),
      await SELF.fetch(URL_CLASSIFY, { method: "POST", headers: { "content-type": "application/json" }, body: json }),
    ];
    for (const answer of answers) {
      const body = await answer.clone().json<{ error: { message: string } }>();
      expect(body.error.message).toMatch(/^top_k must be at most 1000/);
      await expectError(answer, 400, "invalid_top_k");
    }
  });

  it("404 as JSON for an unknown path", async () => {
    await expectError(await SELF.fetch("https://edge.test/v2/nothing"), 404, "not_found");
  });
});
