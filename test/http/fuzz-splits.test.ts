/**
 * The seeded fuzzer's stream classes: however a body's bytes are cut into chunks, the Worker answers exactly as
 * for the whole body; a body that stops part-way (mid-row, mid-header, mid-marker) or breaks off gets a JSON
 * 4xx; a Content-Length that lies is answered by what arrives, never a 5xx. Every image file form the API
 * takes (JPEG baseline and progressive, PNG plain and interlaced, WebP lossy and lossless) raw, as base64 JSON
 * and in a multipart form, through the real app in workerd.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { files } from "../fixtures/images";
import { webpFiles } from "../fixtures/images/webp";
import { appWithEnv } from "../support/app-with-env";
import { testPicture, toBase64 } from "../support/png";
import { makeTinyPackage, mulberry32, publishToBucket } from "../support/tiny-package";

const SEED = 20261204;
const fromBase64 = (b64: string): Uint8Array => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const IMAGES: [string, string, Uint8Array][] = [
  ["png", "image/png", testPicture(48, 2)],
  ["png-interlaced", "image/png", fromBase64(files["png-rgb-interlaced.png"]!)],
  ["jpeg-baseline", "image/jpeg", fromBase64(files["jpeg-baseline.jpg"]!)],
  ["jpeg-progressive", "image/jpeg", fromBase64(files["jpeg-progressive.jpg"]!)],
  ["webp-lossy", "image/webp", fromBase64(webpFiles["webp-lossy.webp"]!)],
  ["webp-lossless", "image/webp", fromBase64(webpFiles["webp-lossless-alpha.webp"]!)],
];

/** The body as a stream of chunks of the given sizes (repeating the last), or erroring after `breakAt` bytes. */
function chunked(bytes: Uint8Array, sizes: () => number, end: { at?: number; breakOff?: boolean } = {}): ReadableStream<Uint8Array> {
  const stop = end.at ?? bytes.length;
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= stop) {
        if (end.breakOff) controller.error(new Error("connection reset by peer"));
        else controller.close();
        return;
      }
      const n = Math.max(1, Math.min(sizes(), stop - at));
      controller.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

/** A body in each of the API's forms: raw, base64 JSON, and a multipart form of one file. */
function forms(type: string, image: Uint8Array): { form: string; type: string; bytes: Uint8Array }[] {
  const boundary = "----fuzz-splits";
  const enc = new TextEncoder();
  const head = enc.encode(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="x"\r\nContent-Type: ${type}\r\n\r\n`);
  const tail = enc.encode(`\r\n--${boundary}--\r\n`);
  const multipart = new Uint8Array(head.length + image.length + tail.length);
  multipart.set(head);
  multipart.set(image, head.length);
  multipart.set(tail, head.length + image.length);
  return [
    { form: "raw", type, bytes: image },
    { form: "json", type: "application/json", bytes: enc.encode(JSON.stringify({ image: toBase64(image), top_k: 3 })) },
    { form: "multipart", type: `multipart/form-data; boundary=${boundary}`, bytes: multipart },
  ];
}

const post = (type: string, body: BodyInit, headers: Record<string, string> = {}) =>
  ({ method: "POST", headers: { "content-type": type, ...headers }, body, duplex: "half" }) as RequestInit;

describe("stream splits, early ends and lying lengths (seeded)", () => {
  const app = appWithEnv({});
  const random = mulberry32(SEED);
  beforeAll(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-splits-v1" }));
  });

  it("gives exactly the whole body's answer for 1-byte, 7-byte and random chunks, in every form", async () => {
    for (const [name, type, image] of IMAGES) {
      for (const body of forms(type, image)) {
        const whole = await app("/v1/classify?top_k=3", post(body.type, body.bytes));
        expect(whole.status, `${name} ${body.form}`).toBe(200);
        const expected = await whole.json();
        const splits: [string, () => number][] = [
          ["1-byte", () => 1],
          ["7-byte", () => 7],
          ["random", () => 1 + Math.floor(random() * 3000)],
        ];
        for (const [how, sizes] of splits) {
          const response = await app("/v1/classify?top_k=3", post(body.type, chunked(body.bytes, sizes)));
          expect(response.status, `${name} ${body.form} ${how}`).toBe(200);
          expect(await response.json(), `${name} ${body.form} ${how}`).toEqual(expected);
        }
      }
    }
  });

  it("answers a body that ends or breaks off anywhere with a JSON 4xx (or, cut only in a raw file's trailer, the same answer)", async () => {
    for (const [name, type, image] of IMAGES) {
      for (const body of forms(type, image)) {
        const whole = await (await app("/v1/classify", post(body.type, body.bytes))).json();
        // Cut points: inside the first bytes, the headers and the image data (mid-row), chosen by the seed.
        const cuts = [1, 7, 40, Math.floor(body.bytes.length / 2), body.bytes.length - 3].concat(
          Array.from({ length: 4 }, () => 1 + Math.floor(random() * (body.bytes.length - 2))),
        );
        for (const at of cuts) {
          for (const breakOff of [false, true]) {
            const response = await app(
              "/v1/classify",
              post(
                body.type,
                chunked(body.bytes, () => 1 + Math.floor(random() * 500), { at, breakOff }),
              ),
            );
            const what = `${name} ${body.form} cut at ${at}/${body.bytes.length}${breakOff ? ", broken off" : ""}`;
            // A raw file that ends cleanly after its last pixel (inside PNG's IEND or before JPEG's EOI) decodes
            // as decoders do; then its answer must be the whole file's. A JSON or multipart body is incomplete.
            if (response.status === 200 && !breakOff && body.form === "raw" && at > body.bytes.length / 2) {
              expect(await response.json(), what).toEqual(whole);
              continue;
            }
            expect(response.status, what).toBeGreaterThanOrEqual(400);
            expect(response.status, what).toBeLessThan(500);
            const answer = await response.json<{ error: { code: string } }>();
            expect(typeof answer.error.code, what).toBe("string");
            if (breakOff) expect(answer.error.code, what).toBe("incomplete_body");
          }
        }
      }
    }
  });

  it("answers by what arrives when Content-Length lies, and refuses a declared length over the limit with 413", async () => {
    const [, type, image] = IMAGES[2]!;
    const good = await (await app("/v1/classify", post(type, image))).json();
    for (const declared of [1, image.length - 1, image.length + 1, image.length * 2]) {
      const response = await app(
        "/v1/classify",
        post(
          type,
          chunked(image, () => 7),
          { "content-length": String(declared) },
        ),
      );
      // The runtime delivers the bytes the client sent; the length is only a claim, used for the early 413.
      expect(response.status, `declared ${declared} of ${image.length}`).toBe(200);
      expect(await response.json()).toEqual(good);
    }
    const response = await app(
      "/v1/classify",
      post(
        type,
        chunked(image, () => 7),
        { "content-length": String(2 ** 40) },
      ),
    );
    expect(response.status).toBe(413);
    expect((await response.json<{ error: { code: string } }>()).error.code).toBe("body_too_large");
  });
});
