import { describe, expect, it } from "vitest";
import { decoderMemoryPeakBytes, prepareImage, resetDecoderMemoryPeak } from "../../src/image";
import { fixture, identity, maxAbsDiff, pillowPixels, refusal } from "./fixtures";

const { preprocess, input } = identity(32, 48);

const failure = (bytes: Uint8Array) => refusal(bytes, preprocess, input);

describe("an image that is not a JPEG, PNG or WebP is refused with 415", () => {
  it.each([
    ["image.gif", /GIF images are not supported. Send a JPEG, PNG or WebP image./],
    ["image.bmp", /BMP images are not supported/],
  ])("%s", async (name, message) => {
    const error = await failure(fixture(name));
    expect([error.status, error.code]).toEqual([415, "unsupported_media_type"]);
    expect(error.message).toMatch(message);
  });

  it("text or an empty body", async () => {
    for (const bytes of [new TextEncoder().encode("hello, world"), new Uint8Array(0)]) {
      const error = await failure(bytes);
      expect([error.status, error.code]).toEqual([415, "unsupported_media_type"]);
      expect(error.message).toBe("The body is not a JPEG, PNG or WebP image. Send a JPEG, PNG or WebP image.");
    }
  });
});

describe("an image whose header claims too many pixels is refused with 413 before decoding", () => {
  it.each(["jpeg-forged-huge.jpg", "png-forged-huge.png"])("%s (65000x65000)", async (name) => {
    resetDecoderMemoryPeak();
    const error = await failure(fixture(name));
    expect([error.status, error.code]).toEqual([413, "image_too_large"]);
    expect(error.message).toMatch(/65000x65000 \(4225000000 pixels\); the limit is \d+ pixels/);
    expect(decoderMemoryPeakBytes()).toBe(0); // no decoder instance was even created
  });

  it("a progressive JPEG gathered whole is refused by its computed cost where a baseline one of the same size is not", async () => {
    // Patch the frame size (SOF height, width) of each kind to 3000x2000 = 6 MP.
    const resized = (name: string, sof: number) => {
      const bytes = fixture(name);
      let at = 2;
      while (bytes[at + 1] !== sof) at += 2 + ((bytes[at + 2]! << 8) | bytes[at + 3]!);
      bytes.set([2000 >> 8, 2000 & 255, 3000 >> 8, 3000 & 255], at + 5);
      return bytes;
    };
    resetDecoderMemoryPeak();
    const progressive = await failure(resized("jpeg-progressive.jpg", 0xc2));
    expect([progressive.status, progressive.code]).toEqual([413, "image_too_large"]);
    expect(progressive.message).toMatch(/^Decoding this 3000x2000 progressive JPEG would need \d+\.\d MiB/);
    expect(decoderMemoryPeakBytes()).toBe(0);
    // The baseline one passes the limit and only then fails, since its data is not 6 MP.
    expect((await failure(resized("jpeg-baseline.jpg", 0xc0))).status).toBe(422);
  });
});

describe("an image that cannot be decoded is refused with 422", () => {
  const withByte = (name: string, find: string, offset: number, value: number) => {
    const bytes = fixture(name);
    const at = new TextDecoder("latin1").decode(bytes).indexOf(find) + offset;
    bytes[at] = value;
    return bytes;
  };
  it.each([
    ["a JPEG cut off inside its image data (libjpeg would fill the rest with grey)", () => fixture("jpeg-truncated.jpg")],
    ["a photo cut off halfway", () => fixture("parity-scaled.jpg").subarray(0, 36_000)],
    ["a JPEG cut off inside its header", () => fixture("jpeg-baseline.jpg").subarray(0, 300)],
    ["a JPEG with a corrupt frame header", () => fixture("jpeg-corrupt.jpg")],
    ["a JPEG with nothing after its start marker", () => fixture("jpeg-baseline.jpg").subarray(0, 3)],
    ["a truncated PNG", () => fixture("png-truncated.png")],
    ["a PNG with corrupt compressed data", () => fixture("png-corrupt-idat.png")],
    ["a PNG whose header claims more rows than its data holds", () => fixture("png-forged-short.png")],
    ["a PNG whose header fails its checksum", () => withByte("png-rgb.png", "IHDR", 6, 99)],
    ["a PNG with an invalid bit depth", () => withByte("png-rgb.png", "IHDR", 12, 3)],
    ["a PNG that says it is 0 pixels wide", () => withByte("png-rgb.png", "IHDR", 7, 0)],
  ])("%s", async (_, bytes) => {
    const error = await failure(bytes());
    expect([error.status, error.code]).toEqual([422, "undecodable_image"]);
    expect(error.message).toMatch(/^The (JPEG|PNG)/);
  });
});

it("a good image decodes normally right after a corrupt one failed", async () => {
  for (const bad of ["jpeg-corrupt.jpg", "jpeg-truncated.jpg", "png-corrupt-idat.png"]) {
    await failure(fixture(bad));
    for (const good of ["jpeg-baseline.jpg", "png-rgba.png"]) {
      const result = await prepareImage(fixture(good), preprocess, input);
      expect(maxAbsDiff(result.tensor, pillowPixels(good).data)).toBeLessThanOrEqual(1);
    }
  }
});
