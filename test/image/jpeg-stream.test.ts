import { describe, expect, it } from "vitest";
import { decoderMemoryBytes } from "../../src/image";
import { ImageError } from "../../src/image/errors";
import { decodeJpeg, dctScale } from "../../src/image/jpeg";
import { JPEG_MAX_SCANS, JpegStream, type JpegStreamHeader } from "../../src/image/jpeg-stream";
import { jpegStreamFiles } from "../fixtures/images/jpeg-stream";
import { fixture, maxAbsDiff } from "./fixtures";

const MiB = 1024 * 1024;

function file(name: string): Uint8Array {
  const text = jpegStreamFiles[name];
  if (text === undefined) throw new Error(`no fixture ${name}`);
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Deterministic chunk sizes 1..max (a small LCG), so a failure names its seed. */
function randomSizes(seed: number, max: number): () => number {
  let x = seed;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return 1 + ((x >>> 8) % max);
  };
}

interface Decoded {
  header: JpegStreamHeader;
  pixels: Uint8Array;
  peakBytes: number;
  memoryBytes: number;
  scans: { read: number; skipped: number };
}

/** Pushes `bytes` in chunks of `size()` bytes, then finishes; checks the rows arrive in order, each once. */
function decode(bytes: Uint8Array, target: number, size: () => number = () => bytes.length, capBytes = 64 * MiB): Decoded {
  const stream = JpegStream.create(target, capBytes);
  try {
    let pixels: Uint8Array | null = null;
    let next = 0;
    const take = (rows: { firstRow: number; rowCount: number; width: number; data: Uint8Array }) => {
      if (rows.rowCount === 0) return;
      expect(rows.firstRow).toBe(next);
      expect(rows.data.length).toBe(rows.rowCount * rows.width * 3);
      const h = stream.header!;
      pixels ??= new Uint8Array(h.outWidth * h.outHeight * 3);
      pixels.set(rows.data, rows.firstRow * rows.width * 3);
      next += rows.rowCount;
    };
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(size(), bytes.length - at);
      take(stream.push(bytes.subarray(at, at + n)));
      at += n;
    }
    take(stream.finish());
    expect(stream.done).toBe(true);
    expect(next).toBe(stream.header!.outHeight);
    return { header: stream.header!, pixels: pixels!, peakBytes: stream.peakBytes, memoryBytes: stream.memoryBytes, scans: stream.scans };
  } finally {
    stream.dispose();
  }
}

/** The ImageError that decoding `bytes` ends in; fails the test if it decodes or throws something else. */
function refusal(bytes: Uint8Array, target: number, capBytes = 64 * MiB, size?: () => number): ImageError {
  try {
    decode(bytes, target, size, capBytes);
  } catch (error) {
    if (error instanceof ImageError) return error;
    throw new Error(`expected an ImageError, got ${String(error)}`, { cause: error });
  }
  throw new Error("expected the image to be refused");
}

/** The current decoder's pixels at the same scale, as RGB (it keeps grey as one channel). */
function current(bytes: Uint8Array, target: number): Uint8Array {
  const { image } = decodeJpeg(bytes, target);
  if (image.channels === 3) return image.data;
  return Uint8Array.from({ length: image.data.length * 3 }, (_, i) => image.data[Math.floor(i / 3)]!);
}

const KINDS = [
  "stream-photo.jpg", // baseline 4:2:0
  "stream-photo-progressive.jpg",
  "stream-photo-progressive-restart.jpg",
  "stream-photo-arithmetic.jpg", // progressive, arithmetic-coded
  "stream-photo-simple-scans.jpg", // one full-precision scan per component
  "stream-grey-progressive.jpg",
  "stream-444-progressive.jpg",
  "stream-cmyk.jpg", // Adobe CMYK, baseline
];

describe("the pixels do not depend on how the bytes arrive", () => {
  // 600x400 (300x200, 150x100 for some): target 32 gives 1/8 (the DC-only path for multi-scan files),
  // 150 gives 3/8 or more (whole coefficient buffer).
  it.each(KINDS.flatMap((name) => [32, 150].map((target) => [name, target] as const)))("%s at target %d", (name, target) => {
    const bytes = file(name);
    const whole = decode(bytes, target);
    expect(whole.header.scale).toBe(dctScale(whole.header.width, whole.header.height, target));
    for (const [label, size] of [
      ["1 byte", () => 1],
      ["7 bytes", () => 7],
      ["random 1-4096 (seed 1)", randomSizes(1, 4096)],
      ["random 1-100 (seed 2)", randomSizes(2, 100)],
    ] as const) {
      const split = decode(bytes, target, size);
      expect(maxAbsDiff(split.pixels, whole.pixels), `${label}`).toBe(0);
    }
  });

  it("a baseline JPEG's rows come out while its bytes are still arriving", () => {
    const bytes = file("stream-photo.jpg"); // 46 KB
    const stream = JpegStream.create(150, 64 * MiB);
    try {
      const counts: number[] = [];
      let rows = 0;
      for (let at = 0; at < bytes.length; at += 1024) {
        rows += stream.push(bytes.subarray(at, at + 1024)).rowCount;
        counts.push(rows);
      }
      // 225x150 at 3/8. Measured: the first rows after 5 KiB, then 12-18 rows every 4 KiB (libjpeg resumes
      // after each RESUME_BYTES, 4 KiB), 138 of 150 before finish(); the rest wait for the last bytes.
      expect(counts[4]).toBeGreaterThan(0);
      expect(counts[Math.floor(counts.length / 2)]).toBeGreaterThan(40);
      expect(rows).toBeGreaterThan(120);
      expect(rows + stream.finish().rowCount).toBe(150);
    } finally {
      stream.dispose();
    }
  });

  it("the header is known as soon as its bytes are in, before any row", () => {
    const bytes = file("stream-photo-progressive.jpg");
    const stream = JpegStream.create(32, 64 * MiB);
    try {
      expect(stream.header).toBeNull();
      stream.push(bytes.subarray(0, 8)); // SOI and part of a segment: not yet
      expect(stream.header).toBeNull();
      const rows = stream.push(bytes.subarray(8, 5000));
      expect(rows.rowCount).toBe(0); // progressive: nothing until every scan is in
      expect(stream.header).toEqual({
        width: 600,
        height: 400,
        components: 3,
        colorSpace: "ycbcr",
        progressive: true,
        scale: 1,
        outWidth: 75,
        outHeight: 50,
        compactStore: true,
      });
    } finally {
      stream.dispose();
    }
  });
});

describe("progressive, restart-marker and arithmetic JPEGs decode to their baseline's exact pixels", () => {
  // jpegtran rewrites the entropy coding and keeps the coefficients, so the pixels must be identical, at
  // every scale: 1/7 through the compact store (at 1/8 the luma's AC scans skipped), 8/8 through the whole
  // buffer.
  const baseline = file("stream-photo.jpg");
  it.each([1, 2, 3, 4, 5, 6, 7, 8])("scale %d/8", (n) => {
    const target = Math.ceil((400 * n) / 8); // shorter side 400: the smallest scale covering it is n
    const expected = decode(baseline, target);
    expect(expected.header.scale).toBe(n);
    for (const name of [
      "stream-photo-progressive.jpg",
      "stream-photo-progressive-restart.jpg",
      "stream-photo-arithmetic.jpg",
      "stream-photo-simple-scans.jpg",
    ]) {
      const got = decode(file(name), target);
      expect(got.header.compactStore, name).toBe(n < 8);
      expect(maxAbsDiff(got.pixels, expected.pixels), name).toBe(0);
    }
  });

  it("at 1/8 a progressive file's AC scans of 1x1-IDCT components are skipped unread", () => {
    // Pillow/libjpeg's script for grey: DC, 1-5, 6-63, 1-63 refine, DC refine, 1-63 refine: 4 AC scans.
    expect(decode(file("stream-grey-progressive.jpg"), 16).scans).toEqual({ read: 6, skipped: 4 });
    // 4:2:0: the chroma gets a 2x2 IDCT at 1/8 (it reads AC), so only the luma's 4 AC scans are skipped.
    expect(decode(file("stream-photo-progressive.jpg"), 32).scans).toEqual({ read: 10, skipped: 4 });
    // 4:4:4: every component is 1x1 at 1/8; Pillow's script for it has 8 AC scans.
    expect(decode(file("stream-444-progressive.jpg"), 16).scans).toEqual({ read: 10, skipped: 8 });
  });
});

describe("the pixels are the current decoder's (src/image/jpeg.ts, TurboJPEG 2.0) at the same scale", () => {
  // Measured: identical (0) on every one of these, baseline and progressive, at 1/8 and above: the same
  // IDCT, upsampling and colour conversion (libjpeg-turbo 2.0 vs 2.1.5, both without SIMD here).
  it.each([
    ["stream-photo.jpg", 32],
    ["stream-photo.jpg", 150],
    ["stream-photo-progressive.jpg", 32],
    ["stream-photo-progressive.jpg", 400],
    ["stream-grey-progressive.jpg", 16],
    ["stream-cmyk.jpg", 13],
    ["stream-cmyk.jpg", 100],
  ])("%s at target %d", (name, target) => {
    const bytes = file(name);
    expect(maxAbsDiff(decode(bytes, target).pixels, current(bytes, target))).toBe(0);
  });

  it.each([
    ["jpeg-baseline.jpg", 4],
    ["jpeg-baseline.jpg", 32],
    ["jpeg-grey.jpg", 4],
    ["jpeg-cmyk.jpg", 4],
    ["jpeg-progressive.jpg", 4],
    ["jpeg-progressive.jpg", 32],
  ])("the pipeline's fixture %s at target %d", (name, target) => {
    const bytes = fixture(name);
    expect(maxAbsDiff(decode(bytes, target).pixels, current(bytes, target))).toBe(0);
  });
});

describe("12-megapixel JPEGs at 1/8", () => {
  it("a baseline one decodes in its 128 KiB input window and a 16-row buffer: under 256 KiB in all", () => {
    const bytes = fixture("jpeg-12mp.jpg"); // 4032x3024, four flat quadrants
    const got = decode(bytes, 224, () => 65536);
    expect([got.header.outWidth, got.header.outHeight, got.header.scale]).toEqual([504, 378, 1]);
    // Measured 177,910 bytes counted; the module's memory never grows past its initial 256 KiB.
    expect(got.peakBytes).toBeLessThan(256 * 1024);
    expect(got.memoryBytes).toBeLessThanOrEqual(256 * 1024);
    expect(maxAbsDiff(got.pixels, current(bytes, 224))).toBe(0);
    expect(decoderMemoryBytes()).toBe(0); // disposed
  });

  it("a progressive one keeps DC only for the luma, and for the chroma's 2x2 IDCT what it reads: ~6.5 MiB, not ~37", () => {
    const progressive = file("stream-12mp-progressive.jpg"); // jpegtran -progressive of the baseline one
    const got = decode(progressive, 224, () => 65536);
    expect(got.header).toMatchObject({ progressive: true, scale: 1, compactStore: true });
    // Luma 504x378 blocks x 2 bytes + chroma 2 x 252x189 blocks x 55 bytes + strips: measured 6,764,896
    // (13,718,176 when the chroma kept whole blocks).
    expect(got.peakBytes).toBeLessThan(7 * MiB);
    expect(maxAbsDiff(got.pixels, decode(fixture("jpeg-12mp.jpg"), 224).pixels)).toBe(0);
  });

  // What the shim's store keeps per block for a k x k IDCT in a progressive file (jpeg-shim.c, idct_reads):
  // 2 bytes per coefficient the IDCT reads (1, 25, 9, 49, 25, 36, 49, 64 of them) and, for k > 1, a
  // nonzero bit per other coefficient, which AC refinement scans need to parse.
  const storeBytesPerBlock = [0, 2, 55, 25, 100, 55, 76, 100, 128];
  it.each([1, 2, 3, 4])("4:2:0 progressive at %d/8: the baseline's pixels; the store counts what the IDCTs read", (n) => {
    const target = Math.ceil((3024 * n) / 8);
    const got = decode(file("stream-12mp-progressive.jpg"), target, () => 65536);
    expect(got.header).toMatchObject({ scale: n, compactStore: true });
    expect(maxAbsDiff(got.pixels, decode(fixture("jpeg-12mp.jpg"), target, () => 65536).pixels)).toBe(0);
    // jdmaster.c: 4:2:0 chroma gets a 2n x 2n IDCT up to 8; the luma n x n. Blocks: luma 504x378, chroma
    // 252x189 each. Strips (jmemmgr.c keeps 5 x v_samp_factor block rows of each array in memory, whole
    // blocks, for block smoothing): (504 x 10 + 2 x 252 x 5) x 128 bytes.
    const store = 504 * 378 * storeBytesPerBlock[n]! + 2 * 252 * 189 * storeBytesPerBlock[Math.min(2 * n, 8)]!;
    const strips = (504 * 10 + 2 * 252 * 5) * 128;
    // The rest (input window, row buffers, libjpeg's fixed state): measured 177,112 .. 294,998 bytes.
    expect(got.peakBytes - store - strips).toBeGreaterThan(0);
    expect(got.peakBytes - store - strips).toBeLessThan(384 * 1024);
    // Whole blocks (the previous store) would need 504 x 378 x 128 + 2 x 252 x 189 x 128 = 36,578,304.
  });

  it("at 2/8 the luma's 2x2 and the chroma's 4x4 IDCT read 25 and 49 coefficients (~20 MiB): refused under a 16 MiB cap, decoded under 32", () => {
    const progressive = file("stream-12mp-progressive.jpg");
    const error = refusal(progressive, 400, 16 * MiB, () => 65536);
    expect([error.status, error.code]).toEqual([413, "image_too_large"]);
    expect(error.message).toMatch(/more memory than an image may use/);
    const got = decode(progressive, 400, () => 65536, 32 * MiB);
    expect(got.header.compactStore).toBe(true);
    expect(got.peakBytes).toBeGreaterThan(20 * MiB); // measured 21,181,768 (36,788,188 with whole blocks)
    expect(got.peakBytes).toBeLessThanOrEqual(32 * MiB);
    expect(decoderMemoryBytes()).toBe(0);
  });
});

describe("a truncated or corrupt JPEG is refused with 422, as the current decoder refuses it", () => {
  const cuts: Array<[string, (b: Uint8Array) => Uint8Array]> = [
    ["half a baseline file", (b) => b.subarray(0, b.length >> 1)],
    ["a baseline file without its EOI", (b) => b.subarray(0, b.length - 2)],
    ["the header only", (b) => b.subarray(0, 600)],
  ];
  it.each(cuts)("%s", (_, cut) => {
    const bytes = cut(file("stream-photo.jpg"));
    for (const size of [() => bytes.length, () => 7]) {
      const error = refusal(bytes, 150, 64 * MiB, size);
      expect([error.status, error.code]).toEqual([422, "undecodable_image"]);
    }
    expect(() => decodeJpeg(bytes, 150)).toThrow(ImageError); // the current decoder agrees
  });

  it("a progressive file cut before its last scan", () => {
    const bytes = file("stream-photo-progressive.jpg");
    const cut = bytes.subarray(0, bytes.length - 3000);
    for (const target of [32, 150]) expect(refusal(cut, target).code).toBe("undecodable_image");
    expect(() => decodeJpeg(cut, 150)).toThrow(ImageError);
  });

  it.each(["jpeg-truncated.jpg", "jpeg-corrupt.jpg"])("the pipeline's %s", (name) => {
    const error = refusal(fixture(name), 4);
    expect([error.status, error.code]).toEqual([422, "undecodable_image"]);
  });

  it("garbage instead of a JPEG, and a failed stream stays failed", () => {
    const stream = JpegStream.create(32, 64 * MiB);
    try {
      expect(() => stream.push(new TextEncoder().encode("hello, world"))).toThrow(/Not a JPEG file/);
      expect(() => stream.push(file("stream-photo.jpg"))).toThrow(/already failed/);
    } finally {
      stream.dispose();
    }
    expect(() => stream.push(new Uint8Array(1))).toThrow(/after dispose/);
  });
});

describe("a scan bomb is refused after the scan limit, quickly", () => {
  /**
   * Repeats the last scan (Cr's AC 1-63 at full precision, with the DHT before it) of a tiny progressive
   * file `copies` times before its EOI. libjpeg accepts each repeat as valid (Ah = Al = 0: no warning), so
   * only the scan limit stops it. */
  function bomb(copies: number): Uint8Array {
    const base = file("stream-tiny-simple-scans.jpg");
    // The last scan's unit starts at the last DHT before the last SOS.
    let lastSos = -1;
    for (let i = 0; i + 1 < base.length; i++) if (base[i] === 0xff && base[i + 1] === 0xda) lastSos = i;
    let unit = lastSos;
    for (let i = lastSos - 1; i > 0; i--) {
      if (base[i] === 0xff && base[i + 1] === 0xc4) {
        unit = i;
        break;
      }
    }
    const eoi = base.length - 2;
    const scan = base.subarray(unit, eoi);
    const out = new Uint8Array(eoi + scan.length * copies + 2);
    out.set(base.subarray(0, eoi));
    for (let k = 0; k < copies; k++) out.set(scan, eoi + k * scan.length);
    out.set([0xff, 0xd9], out.length - 2);
    return out;
  }

  it(`${JPEG_MAX_SCANS} scans decode; one more is refused with 422 too_many_scans`, () => {
    // The tiny file has 4 scans (DC, then one AC scan per component).
    expect(decode(bomb(JPEG_MAX_SCANS - 4), 8).scans.read).toBe(JPEG_MAX_SCANS);
    const error = refusal(bomb(JPEG_MAX_SCANS - 3), 8);
    expect([error.status, error.code]).toEqual([422, "too_many_scans"]);
    expect(error.message).toMatch(/more than 100 scans/);
  });

  it("5000 repeats: refused at scan 101 whether streamed or whole, at 1/8 and full size", () => {
    const bytes = bomb(5000); // ~0.4 MB
    for (const target of [6, 48]) {
      for (const size of [() => bytes.length, () => 4096]) {
        const t0 = performance.now();
        const error = refusal(bytes, target, 64 * MiB, size);
        const ms = performance.now() - t0;
        console.log(`scan bomb (${bytes.length} bytes), target ${target}: refused in ${ms.toFixed(1)} ms`);
        expect(error.code).toBe("too_many_scans");
        expect(ms).toBeLessThan(1000);
      }
    }
  });
});

describe("the memory cap", () => {
  it("a progressive image whose coefficients exceed the cap is refused with 413 before any row", () => {
    const bytes = file("stream-photo-progressive.jpg"); // full size: 600x400 4:2:0 = 5,700 blocks x 128 B + rows
    const error = refusal(bytes, 400, 512 * 1024);
    expect([error.status, error.code]).toEqual([413, "image_too_large"]);
    expect(decoderMemoryBytes()).toBe(0);
  });

  it("a cap below the input window is refused when the decoder is created", () => {
    expect(() => JpegStream.create(224, 64 * 1024)).toThrow(ImageError);
    expect(decoderMemoryBytes()).toBe(0);
  });

  it("the counted peak stays within the cap, and the wasm memory within the cap plus its slack", () => {
    const bytes = file("stream-photo-progressive.jpg");
    const got = decode(bytes, 400, () => 4096, 2 * MiB);
    expect(got.peakBytes).toBeLessThanOrEqual(2 * MiB);
    expect(got.memoryBytes).toBeLessThanOrEqual(256 * 1024 + 2 * MiB + (2 * MiB) / 16 + MiB);
  });
});
