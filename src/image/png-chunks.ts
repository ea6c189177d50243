/**
 * Walks a PNG's chunks (https://www.w3.org/TR/png-3/#5Chunk-layout) and checks their order before anything is
 * decoded, so the size probe and the decoder read the same header. A file that breaks the order is refused
 * (422), never guessed at: one with a second IHDR could otherwise pass the pixel limit with a 1x1 header and
 * be decoded at the size of the second.
 *
 * The rules (PNG 5.6, "Chunk ordering"): exactly one IHDR, first; at most one PLTE, before the first IDAT;
 * tRNS before the first IDAT; the IDAT chunks contiguous; IEND last: nothing after it is read. Every chunk's
 * length must lie within the file, and every chunk but IDAT passes its CRC (zlib checks IDAT's data itself).
 */
import { undecodable } from "./errors";

export interface PngInfo {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlaced: boolean;
  palette?: Uint8Array; // RGB triples
  paletteAlpha?: Uint8Array; // tRNS of a palette image: alpha per entry, missing entries opaque
  idat: Uint8Array[]; // views of the file, in order
}

/** Samples per pixel by colour type (PNG 11.2.2). */
export const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

export function readPngChunks(bytes: Uint8Array): PngInfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const order = new PngChunkOrder();
  const idat: Uint8Array[] = [];
  for (let pos = 8; pos < bytes.length; ) {
    if (pos + 12 > bytes.length) throw undecodable("The PNG is truncated inside a chunk header.");
    const length = view.getUint32(pos);
    const type = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!, bytes[pos + 6]!, bytes[pos + 7]!);
    if (length > 0x7fffffff || pos + 12 + length > bytes.length) throw chunkOverrun(type, length);
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (type !== "IDAT" && crc32(bytes.subarray(pos + 4, pos + 8 + length)) !== view.getUint32(pos + 8 + length)) {
      throw badChecksum(type);
    }
    pos += 12 + length;
    const kind = order.accept(type, data);
    if (kind === "end") break;
    if (kind === "idat") idat.push(data);
  }
  return { ...order.finish(), idat };
}

/** The refusal of a chunk whose length runs past the end of the file (or past 2^31 - 1). */
export function chunkOverrun(type: string, length: number) {
  return undecodable(`The PNG is truncated: its ${printable(type)} chunk claims ${length} bytes, more than the file holds.`);
}

export function badChecksum(type: string) {
  return undecodable(`The PNG's ${printable(type)} chunk is corrupt (bad checksum).`);
}

/**
 * Most IDAT chunks accepted. Encoders write IDATs of a fixed size, libpng (and so Android, Chrome, most
 * tools) 8 KiB by default: a 100 MB body, Workers' own limit on Free and Pro zones, holds 12,208 of them, so
 * 16,384 refuses no file the platform would deliver from a common encoder. A file of 1-byte IDATs is refused
 * after 213 KB of input. The streaming decoder gathers IDAT payloads into pieces before its inflater sees them, so
 * tiny chunks cost a 12-byte header parse each, never an inflater call; the limit makes the refusal explicit.
 * Both decoders count through PngChunkOrder.
 */
export const MAX_IDAT_CHUNKS = 16_384;
/**
 * Most chunks other than IHDR, IDAT and IEND (PLTE, tRNS and the ancillary ones). Real files carry a few
 * (text, colour profile, physical size, Apple's iDOT); an animated PNG carries two a frame (fcTL, fdAT), so
 * 1024 allows ~500 frames. Their data is checksummed as it passes and not kept (palette and tRNS: 768 and
 * 256 bytes at most), so neither their number nor their size decides memory; this bounds the work.
 */
export const MAX_OTHER_CHUNKS = 1024;
/**
 * The chunk-order rules above, fed one chunk at a time after its length and CRC have been checked; shared by
 * readPngChunks (the whole file in memory) and the streaming decoder (src/image/png-stream.ts), so both
 * refuse the same files with the same words.
 *
 * `data` may be a prefix of the chunk's data when `length` says how long the chunk is: the streaming decoder
 * keeps only what can matter (a palette has at most 256 entries that an index can name) so that no chunk's
 * size decides its memory. IDAT's data is not needed to check its place.
 */
export class PngChunkOrder {
  private info: Omit<PngInfo, "idat"> | undefined;
  private paletteLength = 0;
  private seenIdat = false;
  private idatEnded = false; // a chunk other than IDAT came after the IDAT run
  /** IDAT chunks and other chunks (everything but IHDR and IEND) seen so far. */
  idatChunks = 0;
  otherChunks = 0;

  /** The header, once IHDR has been accepted. */
  get header(): Omit<PngInfo, "idat"> | undefined {
    return this.info;
  }

  /** Checks the chunk's place in the file; "end" for IEND, after which nothing is read. */
  accept(type: string, data: Uint8Array, length = data.length): "header" | "idat" | "end" | "other" {
    if (!this.info) {
      if (type !== "IHDR") throw undecodable("The PNG does not start with its header chunk.");
      if (length !== data.length) throw undecodable("The PNG header chunk is corrupt.");
      this.info = parseHeader(data);
      return "header";
    }
    const info = this.info;
    if (type === "IHDR") throw undecodable("The PNG has more than one header chunk.");
    if (type === "IEND") return "end";
    if (type === "IDAT") {
      if (this.idatEnded) throw undecodable("The PNG's image data chunks are not contiguous.");
      this.seenIdat = true;
      if (++this.idatChunks > MAX_IDAT_CHUNKS) {
        throw undecodable(`The PNG's image data is split into more than ${MAX_IDAT_CHUNKS} chunks.`);
      }
      return "idat";
    }
    if (++this.otherChunks > MAX_OTHER_CHUNKS) throw undecodable(`The PNG has more than ${MAX_OTHER_CHUNKS} ancillary chunks.`);
    if (this.seenIdat) this.idatEnded = true;
    if (type === "PLTE") {
      if (this.seenIdat) throw undecodable("The PNG's palette comes after its image data.");
      if (info.palette) throw undecodable("The PNG has more than one palette.");
      info.palette = data;
      this.paletteLength = length;
    } else if (type === "tRNS") {
      if (this.seenIdat) throw undecodable("The PNG's transparency chunk comes after its image data.");
      if (info.colorType === 3) info.paletteAlpha = data;
    }
    return "other";
  }

  /** The palette check, which needs every chunk before the image data; the streaming decoder runs it at the first IDAT. */
  checkPalette(): void {
    const info = this.info;
    if (info?.colorType === 3 && (!info.palette || this.paletteLength % 3 !== 0 || this.paletteLength === 0)) {
      throw undecodable("The palette PNG has no valid palette.");
    }
  }

  /** The header and palette, once every chunk has been accepted; refuses a file without header or image data. */
  finish(): Omit<PngInfo, "idat"> {
    if (!this.info) throw undecodable("The PNG header is truncated.");
    this.checkPalette();
    if (!this.seenIdat) throw undecodable("The PNG holds no image data.");
    return this.info;
  }
}

function parseHeader(d: Uint8Array): Omit<PngInfo, "idat"> {
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  if (d.length !== 13) throw undecodable("The PNG header chunk is corrupt.");
  const [depth, colorType, compression, filter, interlace] = [d[8]!, d[9]!, d[10]!, d[11]!, d[12]!];
  if (!DEPTHS[colorType]?.includes(depth) || compression !== 0 || filter !== 0 || interlace > 1) {
    throw undecodable(`The PNG header is invalid (colour type ${colorType}, bit depth ${depth}).`);
  }
  // PNG 11.2.2: width and height are at most 2^31 - 1.
  const width = view.getUint32(0);
  const height = view.getUint32(4);
  if (width > 0x7fffffff || height > 0x7fffffff) throw undecodable("The PNG header is corrupt.");
  return { width, height, depth, colorType, interlaced: interlace === 1 };
}

/** A chunk type as it can be shown in a message: four letters, or its bytes in hex. */
export function printable(type: string): string {
  return /^[A-Za-z]{4}$/.test(type) ? type : [...type].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 as PNG defines it (PNG Annex D); `previous`, the CRC of the bytes before `data`, continues one. */
export function crc32(data: Uint8Array, previous = 0): number {
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
