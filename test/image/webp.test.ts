import { describe, expect, it } from "vitest";
import { MAX_WEBP_LOSSLESS_PIXELS, MAX_WEBP_PIXELS } from "../../src/config";
import { decoderMemoryBytes, decoderMemoryPeakBytes, prepareImage, resetDecoderMemoryPeak } from "../../src/image";
import { sniffImage } from "../../src/image/sniff";
import { decodeWebp, webpDecodeSize } from "../../src/image/webp";
import { fixture, identity, maxAbsDiff, refusal } from "./fixtures";
import { webpFixture, webpPillowPixels } from "./webp-fixtures";

const { preprocess, input } = identity(32, 48); // no resize: the decoded pixels themselves

const failure = (bytes: Uint8Array) => refusal(bytes, preprocess, input);

describe("the WebP header gives the kind and size before decoding", () => {
  it.each([
    ["webp-lossy.webp", { lossless: false, alpha: false }], // a plain VP8 chunk
    ["webp-lossless.webp", { lossless: true, alpha: false }], // a plain VP8L chunk
    ["webp-lossless-alpha.webp", { lossless: true, alpha: true }], // VP8L's alpha bit
    ["webp-lossy-alpha.webp", { lossless: false, alpha: true }], // VP8X, ALPH, VP8
  ])("%s", (name, kind) => {
    expect(sniffImage(webpFixture(name))).toEqual({
      type: "webp",
      width: 48,
      height: 32,
      fileBytes: webpFixture(name).length,
      progressive: false,
      ...kind,
    });
  });

  it("the 12 MP one", () => {
    expect(sniffImage(webpFixture("webp-12mp.webp"))).toMatchObject({ width: 4032, height: 3024, lossless: false });
  });
});

describe("every kind of still WebP decodes to the size and colours Pillow shows", () => {
  // The same libwebp (1.2.4) decodes in Pillow and here, and alpha is composited with Pillow's arithmetic:
  // measured identical (0).
  it.each(["webp-lossy.webp", "webp-lossless.webp", "webp-lossless-alpha.webp", "webp-lossy-alpha.webp"])("%s", async (name) => {
    const expected = webpPillowPixels(name);
    const result = await prepareImage(webpFixture(name), preprocess, input);
    expect(result.source).toEqual({ type: "webp", width: 48, height: 32 });
    expect(maxAbsDiff(result.tensor, expected.data)).toBe(0);
  });

  it("the WebP that the 415 fixtures used to hold (Pillow's lossy default) decodes too", async () => {
    const result = await prepareImage(fixture("image.webp"), preprocess, input);
    expect(result.source.type).toBe("webp");
  });
});

describe("a large WebP is decoded at the size the resize needs, never at full size", () => {
  const photo = webpFixture("webp-12mp.webp"); // 4032x3024, four flat quadrants

  it("a 12 MP lossy WebP decodes to 512 px on its shorter side in about 2 MiB of wasm memory", () => {
    const size = webpDecodeSize(4032, 3024, 512);
    expect(size).toEqual({ width: 682, height: 512 });
    const { image, memoryBytes } = decodeWebp(photo, size, false, [0, 0, 0], 64 * 1024 * 1024);
    expect([image.width, image.height]).toEqual([682, 512]);
    // Full size would be 35 MiB of RGB alone (measured 35.3 MiB of wasm memory through the same decoder).
    expect(memoryBytes).toBeLessThan(3 * 1024 * 1024);
    expect(decoderMemoryBytes()).toBe(0); // the instance, and its memory, are gone
    const pixel = (x: number, y: number) => Array.from(image.data.subarray((y * 682 + x) * 3, (y * 682 + x) * 3 + 3));
    const near = (actual: number[], expected: number[]) =>
      expect(Math.max(...actual.map((v, i) => Math.abs(v - expected[i]!)))).toBeLessThanOrEqual(4);
    near(pixel(40, 40), [220, 40, 40]);
    near(pixel(640, 40), [40, 200, 60]);
    near(pixel(40, 470), [40, 60, 210]);
    near(pixel(640, 470), [240, 230, 120]);
  });

  it("a small image is never scaled up", () => {
    expect(webpDecodeSize(48, 32, 64)).toEqual({ width: 48, height: 32 });
    expect(webpDecodeSize(600, 400, 128)).toEqual({ width: 192, height: 128 });
    expect(webpDecodeSize(400, 600, 400)).toEqual({ width: 400, height: 600 });
  });

  it("the pipeline decodes a 12 MP lossy WebP into a 224x224 input with its colours in place", async () => {
    const pre = { ...identity(224, 224).preprocess, resize: { shorter_side: 256, filter: "bilinear" as const } };
    const result = await prepareImage(photo, pre, { height: 224, width: 224, channels: 3 });
    console.log(`12 MP WebP -> 224x224: decode ${result.decodeMs} ms, preprocess ${result.preprocessMs} ms`);
    expect(result.source).toEqual({ type: "webp", width: 4032, height: 3024 });
    const at = (x: number, y: number) => Array.from(result.tensor.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3));
    expect(maxAbsDiff(at(20, 20), [220, 40, 40])).toBeLessThanOrEqual(4);
    expect(maxAbsDiff(at(203, 203), [240, 230, 120])).toBeLessThanOrEqual(4);
  });

  it("a 1 MP lossless WebP decodes, and one past the pixel limit (a 1080p screenshot's 2.07 MP fits) is refused", async () => {
    const bytes = webpFixture("webp-lossless-1mp.webp"); // 1000x1000
    expect(1920 * 1080).toBeLessThanOrEqual(MAX_WEBP_LOSSLESS_PIXELS);
    const pre = { ...identity(224, 224).preprocess, resize: { shorter_side: 256, filter: "bilinear" as const } };
    const result = await prepareImage(bytes, pre, { height: 224, width: 224, channels: 3 });
    expect(result.source).toEqual({ type: "webp", width: 1000, height: 1000 });
    // VP8L's header: width - 1 and height - 1 in 14 bits each after the signature. Make it just over the limit.
    const bigger = bytes.slice();
    const vp8l = 12 + 8;
    const view = new DataView(bigger.buffer);
    const bits = view.getUint32(vp8l + 1, true);
    expect(bits & 0x3fff).toBe(999);
    const side = Math.ceil(Math.sqrt(MAX_WEBP_LOSSLESS_PIXELS + 1));
    view.setUint32(vp8l + 1, (bits & ~0xfffffff) | (side - 1) | ((side - 1) << 14), true);
    const error = await failure(bigger);
    expect([error.status, error.message]).toEqual([
      413,
      `The lossless WebP is ${side}x${side} (${side * side} pixels); the limit is ${MAX_WEBP_LOSSLESS_PIXELS} pixels.`,
    ]);
  });
});

describe("a WebP that cannot be decoded is refused with 422, never a crash", () => {
  it.each([
    [
      "a WebP cut off halfway (its RIFF size says more)",
      "webp-truncated.webp",
      /^The WebP is truncated: its header says \d+ bytes, the body has 134\.$/,
    ],
    ["a lossless WebP whose bitstream is corrupt (the RIFF sizes match)", "webp-corrupt.webp", /^The WebP has a corrupt bitstream\.$/],
    ["a VP8X header without an image", "webp-vp8x-no-image.webp", /^The WebP has no image data\.$/],
  ])("%s", async (_, name, message) => {
    const error = await failure(webpFixture(name));
    expect([error.status, error.code]).toEqual([422, "undecodable_image"]);
    expect(error.message).toMatch(message);
  });

  it("a WebP cut off inside its image data, its sizes patched to match, fails in the decoder", async () => {
    const whole = webpFixture("parity-scaled.webp"); // 61600 bytes, one VP8 chunk
    const cut = whole.slice(0, 30_000);
    const view = new DataView(cut.buffer);
    view.setUint32(4, cut.length - 8, true); // RIFF size
    view.setUint32(16, cut.length - 20, true); // the VP8 chunk's size
    const error = await failure(cut);
    expect([error.status, error.message]).toEqual([422, "The WebP is truncated."]);
  });

  it("a header too short to hold a chunk", async () => {
    const error = await failure(webpFixture("webp-lossy.webp").subarray(0, 16));
    expect([error.status, error.message]).toEqual([422, "The WebP header is truncated."]);
  });

  it("a good WebP decodes normally right after a corrupt one failed", async () => {
    await failure(webpFixture("webp-corrupt.webp"));
    const result = await prepareImage(webpFixture("webp-lossless-alpha.webp"), preprocess, input);
    expect(maxAbsDiff(result.tensor, webpPillowPixels("webp-lossless-alpha.webp").data)).toBe(0);
  });
});

describe("a WebP the Worker will not decode is refused before the decoder starts", () => {
  it("an animated WebP: 415, naming what to send instead", async () => {
    resetDecoderMemoryPeak();
    const error = await failure(webpFixture("webp-animated.webp"));
    expect([error.status, error.code]).toEqual([415, "unsupported_media_type"]);
    expect(error.message).toBe("Animated WebP images are not supported. Send a still JPEG, PNG or WebP image.");
    expect(decoderMemoryPeakBytes()).toBe(0);
  });

  it("a lossy WebP whose header claims 16383x16383: 413 from the header alone", async () => {
    resetDecoderMemoryPeak();
    const error = await failure(webpFixture("webp-forged-huge.webp"));
    expect([error.status, error.code]).toEqual([413, "image_too_large"]);
    expect(error.message).toBe(`The WebP is 16383x16383 (268402689 pixels); the limit is ${MAX_WEBP_PIXELS} pixels.`);
    expect(decoderMemoryPeakBytes()).toBe(0); // no decoder instance was even created
  });
});
