/**
 * A minimal PNG writer for tests (8-bit RGB or RGBA, stored/uncompressed deflate blocks), so a test
 * can make exactly the image it needs without fixture files. Spec: https://www.w3.org/TR/png-3/
 */
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 as PNG chunks carry it (ISO 3309, polynomial 0xedb88320). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One PNG chunk: length, type, data and CRC. */
export function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

export function zlibStored(raw: Uint8Array): Uint8Array {
  const blocks: number[] = [0x78, 0x01];
  for (let at = 0; at < raw.length || at === 0; at += 65535) {
    const part = raw.subarray(at, at + 65535);
    const last = at + 65535 >= raw.length ? 1 : 0;
    blocks.push(last, part.length & 0xff, part.length >> 8, ~part.length & 0xff, (~part.length >> 8) & 0xff, ...part);
    if (raw.length === 0) break;
  }
  let a = 1;
  let b = 0;
  for (const v of raw) {
    a = (a + v) % 65521;
    b = (b + a) % 65521;
  }
  blocks.push(b >> 8, b & 0xff, a >> 8, a & 0xff);
  return Uint8Array.from(blocks);
}

/** Encodes `pixels` (row-major, `channels` 3 or 4 bytes per pixel) as a PNG file. */
export function encodePng(
  width: number,
  height: number,
  pixels: Uint8Array,
  channels: 3 | 4 = 3,
  headerSize?: { width: number; height: number },
): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, headerSize?.width ?? width);
  view.setUint32(4, headerSize?.height ?? height);
  ihdr.set([8, channels === 4 ? 6 : 2, 0, 0, 0], 8);
  const raw = new Uint8Array(height * (1 + width * channels));
  for (let y = 0; y < height; y++)
    raw.set(pixels.subarray(y * width * channels, (y + 1) * width * channels), y * (1 + width * channels) + 1);
  const parts = [
    Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlibStored(raw)),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A deterministic colourful test picture. */
export function testPicture(size: number, seed: number): Uint8Array {
  const pixels = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      pixels[i] = (x * 37 + seed * 50) & 255;
      pixels[i + 1] = (y * 53 + seed * 20) & 255;
      pixels[i + 2] = ((x ^ y) * 11 + seed * 90) & 255;
    }
  return encodePng(size, size, pixels);
}

export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export const PNG_SIGNATURE = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);

/** An IHDR chunk's data: 8-bit samples, colour type 2 (RGB) unless given, no interlacing. */
export function ihdr(width: number, height: number, colorType = 2): Uint8Array {
  const data = new Uint8Array(13);
  const view = new DataView(data.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  data.set([8, colorType, 0, 0, 0], 8);
  return data;
}

/** Filtered scanlines (filter 0) of `rows` rows of `rowBytes` bytes each, all `value`. */
export function scanlines(rows: number, rowBytes: number, value = 0): Uint8Array {
  const raw = new Uint8Array(rows * (1 + rowBytes)).fill(value);
  for (let y = 0; y < rows; y++) raw[y * (1 + rowBytes)] = 0;
  return raw;
}

/** A PNG file of the given chunks, in the given order (the signature is added). */
export function pngOf(...chunks: Uint8Array[]): Uint8Array {
  const parts = [PNG_SIGNATURE, ...chunks];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** zlib-format deflate by the runtime (CompressionStream "deflate"), as real encoders compress IDAT. */
export async function deflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Bytes a row of `width` pixels takes at this colour type and depth (PNG 7.2). */
export function pngRowBytes(width: number, colorType: number, depth: number): number {
  const samples = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType] ?? 1;
  return Math.ceil((width * samples * depth) / 8);
}

/**
 * Filters unfiltered rows (`height` rows of `rowBytes` bytes) with the filter type `filter(y)` chooses for
 * each row (PNG 9.2), `bpp` bytes a pixel (at least 1): what an encoder writes before deflate.
 */
export function filterRows(raw: Uint8Array, height: number, rowBytes: number, bpp: number, filter: (y: number) => number): Uint8Array {
  const out = new Uint8Array(height * (1 + rowBytes));
  const zero = new Uint8Array(rowBytes);
  for (let y = 0; y < height; y++) {
    const row = raw.subarray(y * rowBytes, (y + 1) * rowBytes);
    const up = y > 0 ? raw.subarray((y - 1) * rowBytes, y * rowBytes) : zero;
    const type = filter(y);
    const o = y * (1 + rowBytes);
    out[o] = type;
    for (let i = 0; i < rowBytes; i++) {
      const a = i >= bpp ? row[i - bpp]! : 0;
      const b = up[i]!;
      const c = i >= bpp ? up[i - bpp]! : 0;
      let predictor = 0;
      if (type === 1) predictor = a;
      else if (type === 2) predictor = b;
      else if (type === 3) predictor = (a + b) >> 1;
      else if (type === 4) {
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[o + 1 + i] = (row[i]! - predictor) & 0xff;
    }
  }
  return out;
}

export interface PngSpec {
  width: number;
  height: number;
  colorType: 0 | 2 | 3 | 4 | 6;
  depth: 1 | 2 | 4 | 8 | 16;
  /** Unfiltered rows: height * pngRowBytes(width, colorType, depth) bytes. */
  raw: Uint8Array;
  /** Filter type per row (default 0, none). */
  filter?: (y: number) => number;
  palette?: Uint8Array;
  trns?: Uint8Array;
  /** Split the zlib stream into IDAT chunks of this many bytes (default: one IDAT). */
  idatBytes?: number;
  /** The zlib stream to store instead of deflate(filtered rows), e.g. a bomb or a short one. */
  zlib?: Uint8Array;
  /** Extra chunks just before IEND, or before the first IDAT. */
  before?: Uint8Array[];
  interlaced?: boolean;
}

/** A PNG file from `spec`, its rows filtered as chosen and deflated by the runtime. */
export async function writePng(spec: PngSpec): Promise<Uint8Array> {
  const { width, height, colorType, depth } = spec;
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([depth, colorType, 0, 0, spec.interlaced ? 1 : 0], 8);
  const rowBytes = pngRowBytes(width, colorType, depth);
  const bpp = pngRowBytes(1, colorType, depth); // the filter's byte distance to the pixel on the left, at least 1
  const zlib = spec.zlib ?? (await deflate(filterRows(spec.raw, height, rowBytes, bpp, spec.filter ?? (() => 0))));
  const idatBytes = spec.idatBytes ?? Math.max(1, zlib.length);
  const idats: Uint8Array[] = [];
  for (let at = 0; at < zlib.length; at += idatBytes) idats.push(chunk("IDAT", zlib.subarray(at, at + idatBytes)));
  return pngOf(
    chunk("IHDR", header),
    ...(spec.palette ? [chunk("PLTE", spec.palette)] : []),
    ...(spec.trns ? [chunk("tRNS", spec.trns)] : []),
    ...(spec.before ?? []),
    ...idats,
    chunk("IEND", new Uint8Array()),
  );
}
