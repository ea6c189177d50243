import { describe, expect, it } from "vitest";
import {
  MAX_STREAMED_WORKING_BYTES,
  MAX_IMAGE_BYTES,
  MAX_IMAGE_WORKING_BYTES,
  MAX_INTERLACED_PNG_PIXELS,
  MAX_JPEG_PIXELS,
  MAX_PNG_PIXELS,
  MAX_PROGRESSIVE_JPEG_PIXELS,
} from "../../src/config";
import {
  decoderMemoryPeakBytes,
  ImageError,
  imageWorkingBytes,
  planJpegStream,
  prepareImage,
  resetDecoderMemoryPeak,
} from "../../src/image";
import { jpegDecoderBytes, jpegStreamCountedBytes, scaledDecodeSide } from "../../src/image/cost";
import { JpegStream } from "../../src/image/jpeg-stream";
import { decodeJpeg } from "../../src/image/jpeg";
import type { JpegHeader, PngHeader } from "../../src/image/sniff";
import { sniffImage } from "../../src/image/sniff";
import { files } from "../fixtures/images";
import { memoryFixtures } from "../fixtures/images/memory";
import { fixture } from "./fixtures";
import { imagenetInput, imagenetPreprocess } from "../support/imagenet-preprocess";

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** Every JPEG the decoder accepts: the pipeline's fixtures and the memory fixtures' shapes and encodings. */
const decodable = [
  ...Object.keys(files)
    .filter((name) => name.endsWith(".jpg") && !/corrupt|truncated|forged/.test(name))
    .map((name) => [name, fixture(name)] as const),
  ...Object.entries(memoryFixtures).map(([name, text]) => [name, fromBase64(text)] as const),
];

const alexnet = imagenetPreprocess;
const alexnetInput = imagenetInput;

describe("the JPEG decoder's memory, computed from the header, is never under the real one", () => {
  for (const shorterSide of [64, 224, 256]) {
    it(`at the DCT scale chosen for a shorter side of ${shorterSide}`, () => {
      const rows: string[] = [];
      for (const [name, bytes] of decodable) {
        const header = sniffImage(bytes) as JpegHeader;
        const computed = jpegDecoderBytes(header, shorterSide);
        const { memoryBytes, scale } = decodeJpeg(bytes, shorterSide);
        rows.push(
          `${name} ${header.width}x${header.height} scale ${scale}/8: real ${memoryBytes}, computed ${computed} (x${(computed / memoryBytes).toFixed(2)})`,
        );
        expect(computed, name).toBeGreaterThanOrEqual(memoryBytes);
        // Close enough to be useful: not more than twice the real figure plus the fixed allowance.
        expect(computed, name).toBeLessThanOrEqual(2 * memoryBytes + 1024 * 1024);
      }
      console.log(rows.join("\n"));
    });
  }
});

describe("an image whose decoding would not fit is refused with 413 from its computed cost", () => {
  /** A real baseline JPEG whose frame header is patched to `width` x `height`. */
  function withSize(width: number, height: number): Uint8Array {
    const bytes = fixture("jpeg-baseline.jpg");
    let at = 2;
    while (bytes[at + 1] !== 0xc0) at += 2 + ((bytes[at + 2]! << 8) | bytes[at + 3]!);
    bytes.set([height >> 8, height & 255, width >> 8, width & 255], at + 5);
    return bytes;
  }

  // 15.6 MP, under the pixel limit, but DCT scaling cannot bring a 240-pixel side below the resize's 256:
  // decoded at full size, ~47 MiB of raster (measured through the inspector before the pixel limits: +60 MB; docs/memory.md).
  it.each([
    [65000, 240],
    [240, 65000],
  ])("%ix%i baseline, without ever starting the decoder", async (width, height) => {
    resetDecoderMemoryPeak();
    const error = await prepareImage(withSize(width, height), alexnet, alexnetInput).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImageError);
    expect([(error as ImageError).status, (error as ImageError).code]).toEqual([413, "image_too_large"]);
    expect((error as ImageError).message).toMatch(
      new RegExp(`^Decoding this ${width}x${height} JPEG would need \\d+\\.\\d MiB; an image may use at most`),
    );
    expect(decoderMemoryPeakBytes()).toBe(0);
  });
});

describe("every image at its limits in a common shape fits the working memory the config allows (gathered images: 16 MP baseline and 1.5 MP progressive JPEG as before)", () => {
  const jpeg = (width: number, height: number, progressive: boolean, fileBytes: number, chroma = 2): JpegHeader => ({
    type: "jpeg",
    width,
    height,
    fileBytes,
    progressive,
    components: [
      { h: chroma, v: chroma },
      { h: 1, v: 1 },
      { h: 1, v: 1 },
    ],
    buffersCoefficients: progressive,
  });
  const png = (width: number, height: number, interlaced = false): PngHeader => ({
    type: "png",
    width,
    height,
    fileBytes: MAX_IMAGE_BYTES,
    progressive: false,
    depth: 16,
    colorType: 6,
    interlaced,
  });
  const side = (pixels: number, aspect: number) =>
    [Math.floor(Math.sqrt(pixels * aspect)), Math.floor(Math.sqrt(pixels / aspect))] as const;

  // Streamed (a raw body): no file copy, no raster; the decoder's coefficient store is what grows.
  it.each([
    ["a baseline 4:3 photo at the pixel limit", jpeg(...side(MAX_JPEG_PIXELS, 4 / 3), false, 0)],
    ["a baseline 16:9 photo at the pixel limit", jpeg(...side(MAX_JPEG_PIXELS, 16 / 9), false, 0)],
    ["a progressive 4:4:4 photo at the pixel limit", jpeg(...side(MAX_PROGRESSIVE_JPEG_PIXELS, 4 / 3), true, 0, 1)],
  ])("streamed: %s", (_, header) => {
    const plan = planJpegStream(header, alexnet, alexnetInput, MAX_STREAMED_WORKING_BYTES);
    console.log(`jpeg ${header.width}x${header.height} streamed: ${(plan.workingBytes / 1048576).toFixed(2)} MiB`);
    expect(plan.workingBytes).toBeLessThanOrEqual(MAX_STREAMED_WORKING_BYTES);
  });

  // The default model resizes to 64: its decode side (128) lets a 4:2:0 progressive decode at 1/8, where the
  // luma keeps only DC terms.
  const fmnist = { ...alexnet, color: "gray" as const, resize: { shorter_side: 64, filter: "bilinear" as const } };
  const fmnistInput = { height: 64, width: 64, channels: 3 };
  it.each([
    ["a progressive 4:2:0 web image, 1920x1440", jpeg(1920, 1440, true, 0)],
    ["a progressive 4:2:0 photo of 8 MP", jpeg(3264, 2448, true, 0)],
  ])("streamed for the default model's 64 px input: %s", (_, header) => {
    const plan = planJpegStream(header, fmnist, fmnistInput, MAX_STREAMED_WORKING_BYTES);
    console.log(`jpeg ${header.width}x${header.height} streamed at 64 px: ${(plan.workingBytes / 1048576).toFixed(2)} MiB`);
    expect(plan.workingBytes).toBeLessThanOrEqual(MAX_STREAMED_WORKING_BYTES);
  });

  it("streamed: a 12 MP progressive 4:2:0 phone photo fits beside AlexNet-224 (the store keeps what the IDCT reads)", () => {
    const plan = planJpegStream(jpeg(4000, 3000, true, 0), alexnet, alexnetInput, MAX_STREAMED_WORKING_BYTES);
    console.log(`jpeg 4000x3000 progressive streamed: ${(plan.workingBytes / 1048576).toFixed(2)} MiB`);
    expect(plan.workingBytes).toBeLessThanOrEqual(MAX_STREAMED_WORKING_BYTES);
  });

  it.each(["jpeg-12mp.jpg", "jpeg-progressive.jpg", "parity-scaled.jpg", "jpeg-grey.jpg"])(
    "streamed: %s's decoder never counts more than the cost model says (its own cap)",
    (name) => {
      const bytes = fixture(name);
      const header = sniffImage(bytes) as JpegHeader;
      for (const side of [64, 128, 256, 512]) {
        const counted = jpegStreamCountedBytes(header, side);
        const decoder = JpegStream.create(side, counted);
        try {
          decoder.push(bytes);
          decoder.finish();
          expect(decoder.peakBytes).toBeLessThanOrEqual(counted);
        } finally {
          decoder.dispose();
        }
      }
    },
  );

  it.each([
    ["a baseline 4:3 photo of 16 MP at the file limit", jpeg(...side(16_000_000, 4 / 3), false, MAX_IMAGE_BYTES)],
    ["a baseline 16:9 photo of 16 MP at the file limit", jpeg(...side(16_000_000, 16 / 9), false, MAX_IMAGE_BYTES)],
    ["a progressive 4:3 photo of 1.5 MP (1 MiB)", jpeg(...side(1_500_000, 4 / 3), true, 1024 * 1024)],
    ["a square 16-bit RGBA PNG at the pixel limit", png(...side(MAX_PNG_PIXELS, 1))],
    ["a 16:9 16-bit RGBA PNG at the pixel limit", png(...side(MAX_PNG_PIXELS, 16 / 9))],
    ["the widest PNG the streaming decoder takes, 16384 x 3000", png(16384, 3000)],
    ["a square 16-bit RGBA interlaced PNG at its pixel limit", png(...side(MAX_INTERLACED_PNG_PIXELS, 1), true)],
    ["a 16:9 16-bit RGBA interlaced PNG at its pixel limit", png(...side(MAX_INTERLACED_PNG_PIXELS, 16 / 9), true)],
  ])("%s", (_, header) => {
    const bytes = imageWorkingBytes(header, alexnet, alexnetInput);
    console.log(
      `${header.type} ${header.width}x${header.height}: ${(bytes / 1048576).toFixed(2)} MiB of ${(MAX_IMAGE_WORKING_BYTES / 1048576).toFixed(2)}`,
    );
    expect(bytes).toBeLessThanOrEqual(MAX_IMAGE_WORKING_BYTES);
  });
});

describe("a JPEG is decoded at twice the resize when that fits, else at the resize", () => {
  const header = (width: number, height: number, fileBytes: number): JpegHeader => ({
    type: "jpeg",
    width,
    height,
    fileBytes,
    progressive: false,
    components: [
      { h: 2, v: 2 },
      { h: 1, v: 1 },
      { h: 1, v: 1 },
    ],
    buffersCoefficients: false,
  });

  it("a 1 MP photo of 300 KB is decoded to at least twice the resize", () => {
    expect(scaledDecodeSide(header(1280, 960, 300_000), alexnet, alexnetInput, MAX_IMAGE_WORKING_BYTES)).toBe(
      2 * alexnet.resize.shorter_side,
    );
  });

  it("a 16 MP photo, whose 2x raster would not fit, is decoded to the resize and fits", () => {
    const big = header(4618, 3464, MAX_IMAGE_BYTES);
    expect(imageWorkingBytes(big, alexnet, alexnetInput, 2 * alexnet.resize.shorter_side)).toBeGreaterThan(MAX_IMAGE_WORKING_BYTES);
    const side = scaledDecodeSide(big, alexnet, alexnetInput, MAX_IMAGE_WORKING_BYTES);
    expect(side).toBe(alexnet.resize.shorter_side);
    expect(imageWorkingBytes(big, alexnet, alexnetInput, side)).toBeLessThanOrEqual(MAX_IMAGE_WORKING_BYTES);
  });
});
