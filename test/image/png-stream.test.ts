import { describe, expect, it } from "vitest";
import { ImageError } from "../../src/image";
import { decodePng } from "../../src/image/png";
import {
  createPngStream,
  INFLATE_READ_BYTES,
  InterlacedPngError,
  MAX_IDAT_CHUNKS,
  MAX_OTHER_CHUNKS,
  type PngStreamResult,
  pngStreamBytes,
} from "../../src/image/png-stream";
import { chunk, deflate, ihdr, type PngSpec, pngOf, pngRowBytes, scanlines, writePng, zlibStored } from "../support/png";
import { mulberry32 } from "../support/random";
import { BACKGROUND, fixture } from "./fixtures";

type Rgb = [number, number, number];
const BG = BACKGROUND as Rgb;

interface Decoded {
  rows: Uint8Array; // every row, concatenated
  result: PngStreamResult;
}

/** Pushes `file` split at the `cuts` sizes (cycled) and collects the rows; every row must come once, in order. */
async function streamDecode(file: Uint8Array, sizes: (i: number) => number = () => file.length): Promise<Decoded> {
  const parts: Uint8Array[] = [];
  let next = 0;
  const stream = createPngStream({
    background: BG,
    onRow: (row, y) => {
      expect(y).toBe(next++);
      parts.push(row.slice());
    },
  });
  for (let at = 0, i = 0; at < file.length; i++) {
    const n = Math.max(1, sizes(i));
    // A copy, as a body stream would hand over fresh buffers.
    await stream.push(file.slice(at, at + n));
    at += n;
  }
  const result = await stream.finish();
  const rows = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    rows.set(p, at);
    at += p.length;
  }
  return { rows, result };
}

/** The ImageError the stream refuses `file` with (pushed in `size`-byte pieces), and the stream's state then. */
async function streamRefusal(file: Uint8Array, size = file.length) {
  const stream = createPngStream({ background: BG, onRow: () => undefined });
  let error: unknown;
  try {
    for (let at = 0; at < file.length; at += size) await stream.push(file.subarray(at, at + size));
    await stream.finish();
  } catch (e) {
    error = e;
  }
  if (!(error instanceof ImageError)) throw new Error(`expected an ImageError, got ${String(error)}`, { cause: error });
  return { error, stream };
}

async function wholeRefusal(file: Uint8Array): Promise<ImageError> {
  try {
    await decodePng(file, BG);
  } catch (e) {
    if (e instanceof ImageError) return e;
    throw e;
  }
  throw new Error("decodePng accepted the file");
}

const chunkings: [name: string, sizes: (file: Uint8Array) => (i: number) => number][] = [
  ["whole", (file) => () => file.length],
  ["1-byte", () => () => 1],
  ["7-byte", () => () => 7],
  [
    "random (seed 7)",
    () => {
      const random = mulberry32(7);
      return () => 1 + Math.floor(random() ** 3 * 5000); // mostly small, sometimes thousands
    },
  ],
];

/** Decodes with the whole-image decoder and with the stream at every chunking; all must be the same pixels. */
async function expectSameAsWhole(file: Uint8Array, skip1Byte = false): Promise<void> {
  const whole = await decodePng(file, BG);
  for (const [name, sizes] of chunkings) {
    if (skip1Byte && name === "1-byte") continue;
    const { rows, result } = await streamDecode(file, sizes(file));
    expect({ name, width: result.width, height: result.height, channels: result.channels }).toEqual({
      name,
      width: whole.width,
      height: whole.height,
      channels: whole.channels,
    });
    expect(rows.length, name).toBe(whole.data.length);
    expect(Buffer.from(rows).equals(Buffer.from(whole.data)), `${name}: rows differ from decodePng`).toBe(true);
  }
}

/** Deterministic sample bytes with structure (gradients and noise), so every filter has work to do. */
function samples(n: number, seed: number): Uint8Array {
  const random = mulberry32(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 3 + (i >> 5) * 7 + Math.floor(random() * 24)) & 0xff;
  return out;
}

function spec(colorType: PngSpec["colorType"], depth: PngSpec["depth"], width: number, height: number, seed: number): PngSpec {
  const raw = samples(height * pngRowBytes(width, colorType, depth), seed);
  if (colorType !== 3) return { width, height, colorType, depth, raw };
  // Palette: 20 entries, half of them with alpha, and some indices beyond the palette (shown black).
  for (let i = 0; i < raw.length; i++) raw[i] = depth === 8 ? raw[i]! % 24 : raw[i]!;
  const palette = samples(20 * 3, seed + 1);
  const trns = Uint8Array.from({ length: 10 }, (_, i) => i * 25);
  return { width, height, colorType, depth, raw, palette, trns };
}

describe("streaming PNG decoder: the same pixels as decodePng, however the bytes arrive", () => {
  const fixtures = [
    "png-grey.png",
    "png-grey-alpha.png",
    "png-rgb.png",
    "png-rgba.png",
    "png-palette-trns.png",
    "png-rgba16.png",
    "png-grey16.png",
    "parity-rgb.png",
    "parity-rgba.png",
  ];
  it.each(fixtures)("fixture %s (Pillow's pixels): whole, 1-byte, 7-byte and random pieces", async (name) => {
    await expectSameAsWhole(fixture(name), name.startsWith("parity"));
  });

  const kinds: [name: string, colorType: PngSpec["colorType"], depth: PngSpec["depth"]][] = [
    ["RGB 8-bit", 2, 8],
    ["RGBA 8-bit", 6, 8],
    ["palette 8-bit + tRNS", 3, 8],
    ["palette 4-bit + tRNS", 3, 4],
    ["grey 8-bit", 0, 8],
    ["grey 16-bit", 0, 16],
    ["grey 2-bit", 0, 2],
    ["grey+alpha 16-bit", 4, 16],
    ["RGB 16-bit", 2, 16],
    ["RGBA 16-bit", 6, 16],
  ];
  it.each(kinds)("%s, filters None/Sub/Up/Average/Paeth by row, two IDAT sizes", async (_, colorType, depth) => {
    const base = spec(colorType, depth, 37, 23, colorType * 100 + depth);
    await expectSameAsWhole(await writePng({ ...base, filter: (y) => y % 5 }));
    await expectSameAsWhole(await writePng({ ...base, filter: (y) => (y * 3 + 1) % 5, idatBytes: 97 }));
  });

  it.each([0, 1, 2, 3, 4])("filter type %i on every row (RGB and palette)", async (filter) => {
    await expectSameAsWhole(await writePng({ ...spec(2, 8, 64, 16, filter), filter: () => filter, idatBytes: 500 }));
    await expectSameAsWhole(await writePng({ ...spec(3, 8, 64, 16, filter), filter: () => filter }));
  });

  it("many random splittings (seeded) of one file give the same rows", async () => {
    const file = await writePng({ ...spec(6, 8, 50, 40, 3), filter: (y) => y % 5, idatBytes: 211 });
    const whole = await decodePng(file, BG);
    for (let seed = 1; seed <= 20; seed++) {
      const random = mulberry32(seed);
      const { rows } = await streamDecode(file, () => 1 + Math.floor(random() * 300));
      expect(Buffer.from(rows).equals(Buffer.from(whole.data)), `seed ${seed}`).toBe(true);
    }
  });

  it("an interlaced PNG is refused with InterlacedPngError, for the caller to fall back to decodePng", async () => {
    for (const name of ["png-rgb-interlaced.png", "png-grey2-interlaced.png"]) {
      const { error } = await streamRefusal(fixture(name), 10);
      expect(error).toBeInstanceOf(InterlacedPngError);
      expect((error as InterlacedPngError).interlaced).toBe(true);
      expect(error.status).toBe(422);
    }
  });

  it("onHeader sees the header before any row and can refuse the image", async () => {
    const file = await writePng(spec(2, 8, 30, 20, 1));
    const seen: string[] = [];
    const stream = createPngStream({
      background: BG,
      onHeader: (h) => {
        seen.push(`header ${h.width}x${h.height} ${h.channels}`);
        if (h.height > 10) throw new ImageError("image_too_large", "too tall");
      },
      onRow: () => seen.push("row"),
    });
    await expect(stream.push(file)).rejects.toThrow("too tall");
    await expect(stream.push(file)).rejects.toThrow("too tall"); // the failure sticks
    expect(seen).toEqual(["header 30x20 3"]);
  });
});

describe("streaming PNG decoder: refusals", () => {
  it("refuses the files readPngChunks refuses, with the same message", async () => {
    const IEND = chunk("IEND", new Uint8Array());
    const idat = () => chunk("IDAT", zlibStored(scanlines(2, 6, 200)));
    const text = () => chunk("tEXt", new TextEncoder().encode("Comment\0hello"));
    const palette = chunk("PLTE", Uint8Array.of(255, 0, 0, 0, 255, 0));
    const data = zlibStored(scanlines(2, 6, 200));
    const badCrc = pngOf(chunk("IHDR", ihdr(2, 2)), idat(), IEND);
    badCrc[8 + 20] = badCrc[8 + 20]! ^ 1; // in IHDR's CRC
    const lying = pngOf(chunk("IHDR", ihdr(2, 2)), idat(), IEND);
    new DataView(lying.buffer).setUint32(8 + 25, 1 << 20); // IDAT's length
    const cases: Uint8Array[] = [
      pngOf(chunk("IHDR", ihdr(1, 1)), chunk("IHDR", ihdr(2, 2)), idat(), IEND),
      pngOf(text(), chunk("IHDR", ihdr(2, 2)), idat(), IEND),
      pngOf(chunk("IHDR", ihdr(2, 2, 3)), chunk("IDAT", zlibStored(scanlines(2, 2, 1))), palette, IEND),
      pngOf(chunk("IHDR", ihdr(2, 2)), chunk("IDAT", data.subarray(0, 5)), text(), chunk("IDAT", data.subarray(5)), IEND),
      pngOf(chunk("IHDR", ihdr(2, 2, 3)), chunk("IDAT", zlibStored(scanlines(2, 2, 1))), IEND), // no palette
      pngOf(chunk("IHDR", ihdr(2, 2)), text(), IEND), // no image data
      badCrc,
      lying,
      pngOf(chunk("IHDR", ihdr(2, 2)), chunk("IDAT", zlibStored(scanlines(3, 6, 200))), IEND), // too much data
      pngOf(chunk("IHDR", ihdr(2, 2)), chunk("IDAT", zlibStored(scanlines(1, 6, 200))), IEND), // too little
      pngOf(chunk("IHDR", ihdr(2, 2)), chunk("IDAT", Uint8Array.of(0x78, 0x01, 0xff, 0xff, 0xff, 0xff)), IEND), // corrupt
    ];
    for (const [i, file] of cases.entries()) {
      const whole = await wholeRefusal(file);
      for (const size of [file.length, 1, 5]) {
        const { error } = await streamRefusal(file, size);
        expect(`${i}: ${error.status} ${error.message}`).toBe(`${i}: ${whole.status} ${whole.message}`);
      }
    }
  });

  it("nothing after IEND is read, and a file that ends between chunks without IEND decodes (as decodePng)", async () => {
    const file = await writePng(spec(2, 8, 8, 8, 1));
    const trailing = pngOf(file.subarray(8), chunk("IHDR", ihdr(20000, 20000)), chunk("IDAT", new Uint8Array(10)));
    await expectSameAsWhole(trailing);
    await expectSameAsWhole(file.subarray(0, file.length - 12)); // IEND cut off
  });

  it("a truncated file is refused (422) wherever it stops: signature, chunk header, mid-row, CRC", async () => {
    const file = await writePng({ ...spec(2, 8, 40, 30, 5), filter: (y) => y % 5, idatBytes: 300 });
    const random = mulberry32(11);
    const cuts = [3, 8 + 5, 8 + 25 + 4, 8 + 25 + 12 + 150, file.length - 12 - 2, file.length - 12 - 300 - 6];
    for (let i = 0; i < 30; i++) cuts.push(1 + Math.floor(random() * (file.length - 13)));
    for (const cut of cuts) {
      const cutFile = file.subarray(0, cut);
      const { error } = await streamRefusal(cutFile, 64);
      expect(error.status, `cut at ${cut}`).toBe(422);
      const whole = await wholeRefusal(cutFile).catch(() => undefined);
      if (cut >= 8) expect(error.message, `cut at ${cut}`).toBe(whole?.message);
    }
  });

  it("a well-formed file whose image data stops mid-row is refused as truncated", async () => {
    const base = spec(2, 8, 40, 30, 5);
    const rowBytes = 1 + 40 * 3;
    const short = new Uint8Array(Math.floor(2.5 * rowBytes)); // 2.5 rows of filter-0 data
    const file = await writePng({ ...base, zlib: await deflate(short) });
    let rows = 0;
    const stream = createPngStream({ background: BG, onRow: () => rows++ });
    await stream.push(file);
    await expect(stream.finish()).rejects.toThrow("The PNG is truncated: its image data ends early.");
    expect(rows).toBe(2);
  });

  it("a chunk length larger than the file, or past 2^31, is refused cleanly", async () => {
    const file = await writePng(spec(2, 8, 8, 8, 1));
    const lying = file.slice();
    new DataView(lying.buffer).setUint32(33, 50_000_000);
    const { error } = await streamRefusal(lying, 10);
    expect(error.message).toBe("The PNG is truncated: its IDAT chunk claims 50000000 bytes, more than the file holds.");
    new DataView(lying.buffer).setUint32(33, 0x80000000);
    const huge = createPngStream({ background: BG, onRow: () => undefined });
    await expect(huge.push(lying.subarray(0, 41))).rejects.toThrow("its IDAT chunk claims 2147483648 bytes");
  });

  it("100,000 one-byte IDAT chunks are refused after the limit, fast, with bounded memory", async () => {
    const zlib = zlibStored(new Uint8Array(1000 * (1 + 100 * 3))); // 301 KB: valid data in every 1-byte chunk
    const idats = Array.from({ length: 100_000 }, (_, i) => chunk("IDAT", zlib.subarray(i, i + 1)));
    const file = pngOf(chunk("IHDR", ihdr(100, 1000)), ...idats, chunk("IEND", new Uint8Array()));
    const started = performance.now();
    const { error, stream } = await streamRefusal(file, 64 * 1024);
    const ms = performance.now() - started;
    console.log(`100,000 1-byte IDATs: refused in ${ms.toFixed(0)} ms, peak retained ${stream.peakRetainedBytes} bytes`);
    expect(error.message).toBe(`The PNG's image data is split into more than ${MAX_IDAT_CHUNKS} chunks.`);
    expect(ms).toBeLessThan(2000);
    expect(stream.peakRetainedBytes).toBeLessThanOrEqual(pngStreamBytes(100, 8, 2));
  });

  it("more ancillary chunks than the limit are refused", async () => {
    const text = chunk("tEXt", new TextEncoder().encode("k\0v"));
    const file = pngOf(chunk("IHDR", ihdr(2, 2)), ...Array.from({ length: MAX_OTHER_CHUNKS + 1 }, () => text));
    const { error } = await streamRefusal(file, 4096);
    expect(error.message).toBe(`The PNG has more than ${MAX_OTHER_CHUNKS} ancillary chunks.`);
  });

  it("a decompression bomb is refused after at most the expected size plus one read buffer", async () => {
    // 64x64 RGB needs 64 * 193 = 12,352 bytes; the IDAT inflates to 64 MiB (64 KiB of zlib).
    const bomb = await deflate(new Uint8Array(64 * 1024 * 1024));
    const file = await writePng({ ...spec(2, 8, 64, 64, 1), zlib: bomb, idatBytes: 8192 });
    const expected = 64 * (1 + 64 * 3);
    for (const size of [file.length, 1000, 7]) {
      const { error, stream } = await streamRefusal(file, size);
      console.log(`bomb in ${size}-byte pieces: refused after inflating ${stream.inflatedBytes} bytes (${bomb.length} compressed)`);
      expect(error.message).toBe("The PNG holds more image data than its header says.");
      expect(stream.inflatedBytes).toBeGreaterThan(expected);
      expect(stream.inflatedBytes).toBeLessThanOrEqual(expected + INFLATE_READ_BYTES);
    }
  });

  it("cancel stops the decode: later pushes reject with the reason", async () => {
    const file = await writePng({ ...spec(2, 8, 40, 30, 5), idatBytes: 300 });
    let rows = 0;
    const stream = createPngStream({ background: BG, onRow: () => rows++ });
    await stream.push(file.subarray(0, 200));
    stream.cancel(new ImageError("undecodable_image", "client went away"));
    await expect(stream.push(file.subarray(200))).rejects.toThrow("client went away");
    await expect(stream.finish()).rejects.toThrow("client went away");
  });

  it("a width past the stream's limit is refused before any row buffer is allocated (413)", async () => {
    const file = pngOf(chunk("IHDR", ihdr(1_000_000, 1)));
    const { error } = await streamRefusal(file);
    expect(error.status).toBe(413);
  });
});

/**
 * A screenshot-like picture: flat panels, lines of text-like marks, and a photo-like window (a quarter of the
 * width, a third of the height: gradients with noise, which compresses ~2:1); RGB.
 */
function screenshot(width: number, height: number): Uint8Array {
  const raw = new Uint8Array(width * height * 3);
  const random = mulberry32(1);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      if (x >= width / 2 && x < (3 * width) / 4 && y >= height / 3 && y < (2 * height) / 3) {
        const noise = Math.floor(random() * 12);
        raw[i] = (x / 8 + noise) & 255;
        raw[i + 1] = (y / 8 + noise) & 255;
        raw[i + 2] = ((x + y) / 16 + noise) & 255;
        continue;
      }
      const panel = ((x / 480) | 0) + ((y / 270) | 0) * 8;
      const text = y % 40 < 14 && x % 9 < 5 && ((x * 7 + y) & 31) > 9;
      raw[i] = text ? 30 : (panel * 37) & 255;
      raw[i + 1] = text ? 30 : (panel * 91 + (y >> 4)) & 255;
      raw[i + 2] = text ? 30 : 200;
    }
  }
  return raw;
}

describe("streaming PNG decoder: large screenshots", () => {
  it("3840x2160 and 1170x2532 decode with a peak of retained memory that does not depend on the height; timings (median of 5)", async () => {
    const timings: string[] = [];
    for (const [width, height] of [
      [3840, 2160],
      [1170, 2532],
    ] as const) {
      const raw = screenshot(width, height);
      const file = await writePng({ width, height, colorType: 2, depth: 8, raw, filter: (y) => (y === 0 ? 1 : 2), idatBytes: 8192 });
      const whole = await decodePng(file, BG);
      const times: number[] = [];
      let peak = 0;
      for (let run = 0; run < 5; run++) {
        let sum = 0;
        let rows = 0;
        const stream = createPngStream({
          background: BG,
          onRow: (row, y) => {
            rows++;
            if (y % 97 === 0)
              expect(Buffer.from(row).equals(Buffer.from(whole.data.subarray(y * row.length, (y + 1) * row.length)))).toBe(true);
            sum = (sum + row[y % row.length]!) | 0;
          },
        });
        const started = performance.now();
        for (let at = 0; at < file.length; at += 64 * 1024) await stream.push(file.subarray(at, at + 64 * 1024));
        const result = await stream.finish();
        times.push(performance.now() - started);
        expect(rows).toBe(height);
        peak = result.peakRetainedBytes;
        expect(peak).toBeLessThanOrEqual(pngStreamBytes(width, 8, 2));
      }
      // The same width at a tenth of the height holds exactly as much.
      const short = await writePng({ width, height: height / 12, colorType: 2, depth: 8, raw: raw.subarray(0, (width * height * 3) / 12) });
      const { result: shortResult } = await streamDecode(short, () => 64 * 1024);
      expect(shortResult.peakRetainedBytes).toBe(peak);
      times.sort((a, b) => a - b);
      timings.push(
        `${width}x${height} (${(file.length / 1e6).toFixed(2)} MB file): median ${times[2]!.toFixed(0)} ms ` +
          `[${times.map((t) => t.toFixed(0)).join(", ")}], peak retained ${(peak / 1024).toFixed(0)} KiB`,
      );
    }
    console.log(`png-stream timings (test log, not a benchmark):\n${timings.join("\n")}`);
  }, 180_000);
});
