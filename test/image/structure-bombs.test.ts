import { describe, expect, it } from "vitest";
import { ImageError, planImage, prepareImage } from "../../src/image";
import { checkJpegScans, jpegSegments, MAX_JPEG_SCANS, SOS } from "../../src/image/jpeg-markers";
import { MAX_IDAT_CHUNKS } from "../../src/image/png-chunks";
import { MAX_WEBP_CHUNKS } from "../../src/image/webp-header";
import { chunk, zlibStored } from "../support/png";
import { fixture, identity } from "./fixtures";

const { preprocess, input } = identity(32, 32);

async function refusal(bytes: Uint8Array): Promise<ImageError> {
  try {
    await prepareImage(bytes, preprocess, input);
  } catch (error) {
    if (error instanceof ImageError) return error;
    throw error;
  }
  throw new Error("the image was accepted");
}

/** A real progressive JPEG with its last scan repeated until it has `scans` scans: each copy is a valid scan. */
function manyScans(scans: number): Uint8Array {
  const jpeg = fixture("jpeg-progressive.jpg");
  const have = checkJpegScans(jpeg);
  let lastSos = 0;
  for (let at = 2; at + 1 < jpeg.length; at++) if (jpeg[at] === 0xff && jpeg[at + 1] === SOS) lastSos = at;
  const eoi = jpeg.length - 2;
  const scan = jpeg.subarray(lastSos, eoi);
  const out = new Uint8Array(eoi + (scans - have) * scan.length + 2);
  out.set(jpeg.subarray(0, eoi));
  for (let i = 0; i < scans - have; i++) out.set(scan, eoi + i * scan.length);
  out.set([0xff, 0xd9], out.length - 2);
  return out;
}

describe("structure bombs are refused by counting, before or while decoding", () => {
  it("counts a real progressive JPEG's scans and a baseline's one", () => {
    expect(checkJpegScans(fixture("jpeg-progressive.jpg"))).toBeGreaterThan(1);
    expect(checkJpegScans(fixture("jpeg-progressive.jpg"))).toBeLessThanOrEqual(20);
    expect(checkJpegScans(fixture("jpeg-baseline.jpg"))).toBe(1);
    expect([...jpegSegments(fixture("jpeg-baseline.jpg"))].at(-1)!.marker).toBe(SOS);
  });

  it(`takes a JPEG of ${MAX_JPEG_SCANS} scans and refuses one of more before decoding, quickly`, async () => {
    expect(checkJpegScans(manyScans(MAX_JPEG_SCANS))).toBe(MAX_JPEG_SCANS);
    expect(() => checkJpegScans(manyScans(MAX_JPEG_SCANS + 1))).toThrow(`more than ${MAX_JPEG_SCANS} scans`);
    const bomb = manyScans(20_000);
    const started = performance.now();
    expect(() => planImage(bomb, preprocess, input)).toThrow(`more than ${MAX_JPEG_SCANS} scans`);
    expect((await refusal(bomb)).status).toBe(422);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("refuses a WebP made of a flood of empty chunks", async () => {
    const webp = fixture("image.webp");
    const view = new DataView(webp.buffer, webp.byteOffset);
    const flood = new Uint8Array(webp.length + 8 * 100_000);
    flood.set(webp);
    for (let i = 0; i < 100_000; i++) flood.set([0x4a, 0x55, 0x4e, 0x4b, 0, 0, 0, 0], webp.length + 8 * i); // "JUNK", size 0
    new DataView(flood.buffer).setUint32(4, view.getUint32(4, true) + 8 * 100_000, true);
    const error = await refusal(flood);
    expect(error.message).toContain(`more than ${MAX_WEBP_CHUNKS} chunks`);
  });

  for (const interlaced of [false, true]) {
    it(`refuses a${interlaced ? "n interlaced" : ""} PNG whose image data is split into one-byte chunks past the limit`, async () => {
      const ihdr = new Uint8Array(13);
      new DataView(ihdr.buffer).setUint32(0, 8);
      new DataView(ihdr.buffer).setUint32(4, 8);
      ihdr.set([8, 2, 0, 0, interlaced ? 1 : 0], 8);
      const data = zlibStored(new Uint8Array(8 * (1 + 8 * 3)));
      const parts = [Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr)];
      for (let i = 0; i < MAX_IDAT_CHUNKS + 1; i++) parts.push(chunk("IDAT", data.subarray(i, i + 1)));
      parts.push(chunk("IEND", new Uint8Array(0)));
      const flood = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        flood.set(p, o);
        o += p.length;
      }
      const started = performance.now();
      const error = await refusal(flood);
      expect(error.message).toContain(`more than ${MAX_IDAT_CHUNKS} chunks`);
      expect(performance.now() - started).toBeLessThan(1000);
    });
  }
});
