/**
 * PNG decoding in TypeScript over the runtime's own zlib (DecompressionStream "deflate"), to the RGB or grey
 * raster that training's Pillow decode gives (training/data.py, ImageFolder.load_rgb).
 *
 * Why our own: @jsquash/png keeps one wasm-bindgen instance per isolate whose memory grows to ~129 MiB on a
 * 12 MP image and never shrinks, and after a fault it cannot be re-created; PNG's format is small
 * (https://www.w3.org/TR/png/), zlib is native here, and the rows are unfiltered as they stream out of the
 * inflater, so no more than the final raster and two rows are ever held. Inflating stops with a 422 as soon as
 * the data exceeds what the header's dimensions need, so a compression bomb cannot run.
 *
 * What Pillow does and we match: 16-bit samples keep their high byte; 1/2/4-bit grey is scaled to 0-255;
 * alpha (colour types 4 and 6, and palette entries with tRNS) is composited over the background with
 * Pillow's rounding. Like training, tRNS on grey or RGB images (a single transparent colour) is ignored.
 * Deviation: Pillow turns 16-bit grey into a clipped 32-bit image that converts to near-white; we keep the high
 * byte, which is the picture.
 */
import { compositeSample } from "./color";
import { ImageError, undecodable } from "./errors";
import { type PngInfo, readPngChunks, SAMPLES } from "./png-chunks";
import type { Raster } from "./raster";

type Rgb = readonly [number, number, number];

/** Adam7 passes (PNG 8.2): x0, y0, dx, dy. A plain image is one pass of every pixel. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;
const PLAIN = [[0, 0, 1, 1]] as const;

export async function decodePng(bytes: Uint8Array, background: Rgb): Promise<Raster> {
  const png = readPngChunks(bytes);
  const { width, height, depth, colorType } = png;
  const spp = SAMPLES[colorType]!;
  const bitsPerPixel = spp * depth;
  const bpp = Math.max(1, bitsPerPixel >> 3); // the filter's byte distance to "the pixel to the left"
  const channels = colorType === 0 ? 1 : 3;
  const out = new Uint8Array(width * height * channels);
  const writeRow = rowWriter(png, out, channels, background);

  const passes = (png.interlaced ? ADAM7 : PLAIN)
    .map(([x0, y0, dx, dy]) => ({
      x0,
      y0,
      dx,
      dy,
      w: Math.ceil((width - x0) / dx),
      h: Math.ceil((height - y0) / dy),
    }))
    .filter((p) => p.w > 0 && p.h > 0); // empty passes have no bytes at all
  const expected = passes.reduce((sum, p) => sum + p.h * (1 + Math.ceil((p.w * bitsPerPixel) / 8)), 0);

  let pass = 0;
  let row = 0;
  let rowBytes = Math.ceil((passes[0]!.w * bitsPerPixel) / 8);
  let line = new Uint8Array(1 + rowBytes); // filter-type byte + the row
  let prev = new Uint8Array(1 + rowBytes); // the previous unfiltered row, zeros at a pass's start
  let fill = 0;
  await inflate(png.idat, expected, (chunk) => {
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(line.length - fill, chunk.length - at);
      line.set(chunk.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill < line.length) break;
      unfilter(line, prev, bpp);
      const p = passes[pass]!;
      writeRow(line.subarray(1), p.y0 + row * p.dy, p.x0, p.dx, p.w);
      [line, prev] = [prev, line];
      fill = 0;
      if (++row === p.h && ++pass < passes.length) {
        row = 0;
        rowBytes = Math.ceil((passes[pass]!.w * bitsPerPixel) / 8);
        line = new Uint8Array(1 + rowBytes);
        prev = new Uint8Array(1 + rowBytes);
      }
    }
  });
  return { width, height, channels, data: out };
}

/** Compressed bytes handed to the inflater at a time; its output comes in 4 KiB pieces (measured in workerd). */
export const INFLATE_PIECE_BYTES = 64 * 1024;

/**
 * Streams the zlib data through the runtime's inflater, handing each piece to `consume`. Refuses (422) data
 * that ends early, that is corrupt (zlib checks its Adler-32), or that exceeds `expected` bytes.
 */
async function inflate(parts: Uint8Array[], expected: number, consume: (chunk: Uint8Array) => void): Promise<void> {
  const stream = new DecompressionStream("deflate");
  const writer = stream.writable.getWriter();
  // Copies: a stream may take ownership of what it is given, and these are views of the caller's body.
  // Fed in bounded pieces: one IDAT chunk may be the whole file, and a copy of it would double the body.
  const feeding = (async () => {
    for (const part of parts) {
      for (let at = 0; at < part.length; at += INFLATE_PIECE_BYTES) await writer.write(part.slice(at, at + INFLATE_PIECE_BYTES));
    }
    await writer.close();
  })();
  feeding.catch(() => undefined); // a failure here also fails the reader, which reports it
  const reader = stream.readable.getReader();
  let received = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.length;
      if (received > expected) throw undecodable("The PNG holds more image data than its header says.");
      consume(value);
    }
  } catch (error) {
    if (error instanceof ImageError) throw error;
    throw undecodable("The PNG's compressed image data is corrupt or truncated.", error);
  } finally {
    reader.cancel().catch(() => undefined); // stops the inflater when we leave early
  }
  if (received < expected) throw undecodable("The PNG is truncated: its image data ends early.");
}

/**
 * Reverses the row filter in place (PNG 9.2); `line[0]` is the filter type, `prev` the row above.
 * Shared with the streaming decoder (src/image/png-stream.ts), so both unfilter alike.
 */
export function unfilter(line: Uint8Array, prev: Uint8Array, bpp: number): void {
  const type = line[0];
  const n = line.length;
  switch (type) {
    case 0:
      return;
    case 1:
      for (let i = 1 + bpp; i < n; i++) line[i] = line[i]! + line[i - bpp]!;
      return;
    case 2:
      for (let i = 1; i < n; i++) line[i] = line[i]! + prev[i]!;
      return;
    case 3:
      for (let i = 1; i < n; i++) line[i] = line[i]! + (((i > bpp ? line[i - bpp]! : 0) + prev[i]!) >> 1);
      return;
    case 4:
      for (let i = 1; i < n; i++) {
        const a = i > bpp ? line[i - bpp]! : 0;
        const b = prev[i]!;
        const c = i > bpp ? prev[i - bpp]! : 0;
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        line[i] = line[i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      return;
    default:
      throw undecodable(`The PNG uses an unknown row filter (${type}).`);
  }
}

/**
 * Returns a function that writes one unfiltered row of `w` pixels, whose first pixel is at column `x0` and the
 * next ones every `dx` columns (interlacing), into row `y` of `out`. Shared with the streaming decoder
 * (src/image/png-stream.ts), which writes each row into a one-row `out`, so both convert colours alike.
 */
export function rowWriter(png: Omit<PngInfo, "idat">, out: Uint8Array, channels: 1 | 3, bg: Rgb) {
  const { width, depth, colorType, palette, paletteAlpha } = png;
  const spp = SAMPLES[colorType]!;
  const paletteSize = palette ? palette.length / 3 : 0;
  const samples = new Uint8Array(width * spp); // one row's samples as 8-bit values
  // Pillow's unpackers for L;1, L;2, L;4 scale grey to the full range; palette indices stay indices.
  const greyScale = colorType === 0 ? ([0, 255, 85, 0, 17][depth] ?? 1) : 1;

  return (row: Uint8Array, y: number, x0: number, dx: number, w: number): void => {
    const count = w * spp;
    let s: Uint8Array = samples;
    if (depth === 8) s = row;
    else if (depth === 16)
      for (let i = 0; i < count; i++) samples[i] = row[2 * i]!; // the high byte
    else {
      const mask = (1 << depth) - 1;
      for (let i = 0; i < count; i++) {
        const bit = i * depth;
        samples[i] = ((row[bit >> 3]! >> (8 - depth - (bit & 7))) & mask) * greyScale;
      }
    }
    const start = (y * width + x0) * channels;
    const step = dx * channels;
    if (dx === 1 && (colorType === 0 || colorType === 2)) {
      out.set(s.subarray(0, count), start); // already what we store
      return;
    }
    // One loop per colour type: this runs for every pixel of the image.
    if (colorType === 0) {
      for (let i = 0, o = start; i < w; i++, o += step) out[o] = s[i]!;
    } else if (colorType === 2) {
      for (let j = 0, o = start; j < count; j += 3, o += step) {
        out[o] = s[j]!;
        out[o + 1] = s[j + 1]!;
        out[o + 2] = s[j + 2]!;
      }
    } else if (colorType === 3) {
      for (let i = 0, o = start; i < w; i++, o += step) {
        const index = s[i]!;
        const p = index < paletteSize ? index * 3 : -1; // out of range: black, as a zero-padded palette
        const a = paletteAlpha && index < paletteAlpha.length ? paletteAlpha[index]! : 255;
        out[o] = compositeSample(p < 0 ? 0 : palette![p]!, a, bg[0]);
        out[o + 1] = compositeSample(p < 0 ? 0 : palette![p + 1]!, a, bg[1]);
        out[o + 2] = compositeSample(p < 0 ? 0 : palette![p + 2]!, a, bg[2]);
      }
    } else if (colorType === 4) {
      for (let j = 0, o = start; j < count; j += 2, o += step) {
        const v = s[j]!;
        const a = s[j + 1]!;
        out[o] = compositeSample(v, a, bg[0]);
        out[o + 1] = compositeSample(v, a, bg[1]);
        out[o + 2] = compositeSample(v, a, bg[2]);
      }
    } else {
      for (let j = 0, o = start; j < count; j += 4, o += step) {
        const a = s[j + 3]!;
        out[o] = compositeSample(s[j]!, a, bg[0]);
        out[o + 1] = compositeSample(s[j + 1]!, a, bg[1]);
        out[o + 2] = compositeSample(s[j + 2]!, a, bg[2]);
      }
    }
  };
}
