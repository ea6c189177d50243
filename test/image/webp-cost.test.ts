import { describe, expect, it } from "vitest";
import {
  MAX_IMAGE_BYTES,
  MAX_IMAGE_WORKING_BYTES,
  MAX_WEBP_ALPHA_PIXELS,
  MAX_WEBP_LOSSLESS_PIXELS,
  MAX_WEBP_PIXELS,
  BODY_SLACK_BYTES,
  REQUEST_MEMORY_BYTES,
} from "../../src/config";
import { imageWorkingBytes } from "../../src/image";
import { webpDecoderBytes } from "../../src/image/cost";
import { sniffImage, type WebpHeader } from "../../src/image/sniff";
import { decodeWebp, webpDecodeSize } from "../../src/image/webp";
import { webpFiles } from "../fixtures/images/webp";
import { webpFixture } from "./webp-fixtures";
import { imagenetInput, imagenetPreprocess } from "../support/imagenet-preprocess";

/** Every WebP fixture the decoder accepts: each kind, photos, the 12 MP one, wide and tall shapes. */
const decodable = Object.keys(webpFiles).filter((name) => !/corrupt|truncated|forged|animated|no-image/.test(name));

const alexnet = imagenetPreprocess;
const alexnetInput = imagenetInput;

describe("the WebP decoder's memory, computed from the header, is never under the real one", () => {
  for (const shorterSide of [32, 128, 512]) {
    it(`decoded to a shorter side of ${shorterSide}`, () => {
      const rows: string[] = [];
      for (const name of decodable) {
        const bytes = webpFixture(name);
        const header = sniffImage(bytes) as WebpHeader;
        const computed = webpDecoderBytes(header, shorterSide);
        const size = webpDecodeSize(header.width, header.height, shorterSide);
        // Uncapped (256 MiB), to see what libwebp really takes; the pipeline caps it at `computed`.
        const { memoryBytes } = decodeWebp(bytes, size, header.alpha, [0, 0, 0], 256 * 1024 * 1024);
        rows.push(
          `${name} ${header.width}x${header.height} -> ${size.width}x${size.height}: real ${memoryBytes}, computed ${computed} (x${(computed / memoryBytes).toFixed(2)})`,
        );
        expect(computed, name).toBeGreaterThanOrEqual(memoryBytes);
        // Close enough to be useful: not more than twice the real figure plus the fixed allowances. Not for
        // lossless and alpha, where the model takes the worst case (alpha planes, 4.25 bytes a pixel of ARGB) and colour-indexed
        // images pack 2-8 pixels a byte (webp-lossless-1mp.webp: 2.2 MB real at 4 colours).
        if (!header.lossless && !header.alpha) expect(computed, name).toBeLessThanOrEqual(2 * memoryBytes + 1024 * 1024);
      }
      console.log(rows.join("\n"));
    });
  }

  it("the computed figure is enough as the decode's memory cap", () => {
    for (const name of decodable) {
      const bytes = webpFixture(name);
      const header = sniffImage(bytes) as WebpHeader;
      const size = webpDecodeSize(header.width, header.height, 512);
      expect(() => decodeWebp(bytes, size, header.alpha, [0, 0, 0], webpDecoderBytes(header, 512)), name).not.toThrow();
    }
  });

  it("a cap below what libwebp needs gives a 422, not more memory", () => {
    const bytes = webpFixture("webp-lossless-1mp.webp"); // 1000x1000 lossless: ~4 MB of ARGB
    let error: unknown;
    try {
      decodeWebp(bytes, { width: 512, height: 512 }, false, [0, 0, 0], 2 * 1024 * 1024);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ status: 422, message: "The WebP needs more memory than reserved for an image of its size." });
  });
});

describe("every WebP at its limits in a common shape fits the working memory the config allows", () => {
  const webp = (width: number, height: number, fileBytes: number, lossless: boolean, alpha: boolean): WebpHeader => ({
    type: "webp",
    width,
    height,
    fileBytes,
    progressive: false,
    lossless,
    alpha,
  });
  const side = (pixels: number, aspect: number) =>
    [Math.floor(Math.sqrt(pixels * aspect)), Math.floor(Math.sqrt(pixels / aspect))] as const;
  const lossyFile = MAX_IMAGE_BYTES;
  const losslessFile = 1024 * 1024; // a lossless photo at 1 MP: coffee.jpg at 1000x750 was 0.86 bytes a pixel

  it.each([
    ["a lossy 4:3 photo at the pixel limit and the file limit", webp(...side(MAX_WEBP_PIXELS, 4 / 3), lossyFile, false, false)],
    ["a lossy 16:9 photo at the pixel limit and the file limit", webp(...side(MAX_WEBP_PIXELS, 16 / 9), lossyFile, false, false)],
    ["a lossy 4:3 photo with alpha at its pixel limit (1 MiB)", webp(...side(MAX_WEBP_ALPHA_PIXELS, 4 / 3), losslessFile, false, true)],
    ["a lossy 16:9 photo with alpha at its pixel limit (1 MiB)", webp(...side(MAX_WEBP_ALPHA_PIXELS, 16 / 9), losslessFile, false, true)],
  ])("%s", (_, header) => {
    const bytes = imageWorkingBytes(header, alexnet, alexnetInput, 256);
    console.log(
      `webp ${header.width}x${header.height} lossless ${header.lossless} alpha ${header.alpha}: ${(bytes / 1048576).toFixed(2)} MiB of ${(MAX_IMAGE_WORKING_BYTES / 1048576).toFixed(2)}`,
    );
    expect(bytes).toBeLessThanOrEqual(MAX_IMAGE_WORKING_BYTES);
  });

  // Lossless WebPs are screenshots and graphics: sent raw (or as JSON) nothing else is held beside them.
  it.each([
    ["a 1920x1080 lossless screenshot of 0.3 MB", webp(1920, 1080, 300 * 1024, true, false)],
    ["a square lossless image with alpha at its pixel limit, 0.3 MB", webp(...side(MAX_WEBP_LOSSLESS_PIXELS, 1), 300 * 1024, true, true)],
  ])("raw: %s fits one request's share beside its own body", (_, header) => {
    const bytes = imageWorkingBytes(header, alexnet, alexnetInput, 256);
    const share = REQUEST_MEMORY_BYTES - BODY_SLACK_BYTES - header.fileBytes;
    console.log(
      `webp ${header.width}x${header.height} lossless raw: ${(bytes / 1048576).toFixed(2)} MiB of ${(share / 1048576).toFixed(2)}`,
    );
    expect(bytes).toBeLessThanOrEqual(share);
  });
});
