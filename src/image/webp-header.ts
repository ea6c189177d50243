/**
 * Reads a WebP's dimensions and kind from its RIFF container before anything is decoded, as sniff.ts does
 * for JPEG and PNG, so the pixel limits and the cost model (cost.ts) apply before the decoder allocates.
 * Layout: the WebP Container Specification (RFC 9649, sections 2.5-2.7): "RIFF", size, "WEBP", then either
 * one "VP8 " (lossy) or "VP8L" (lossless) chunk, or "VP8X" (extended: flags and canvas size) followed by
 * optional chunks (ICCP, ALPH, EXIF, XMP) and the image chunk. Animation (the VP8X flag, ANIM and ANMF
 * chunks) is refused with 415: a classifier has no single picture to classify.
 */
import { ImageError, undecodable } from "./errors";

export interface WebpHeader {
  type: "webp";
  width: number;
  height: number;
  /** The file's size in bytes: the decoder holds a copy of it. */
  fileBytes: number;
  progressive: false;
  /** VP8L: libwebp decodes the whole image to 4 bytes a pixel before it can scale it. */
  lossless: boolean;
  /** Alpha (a VP8X flag, an ALPH chunk, or VP8L's alpha bit): decoded in full, then composited. */
  alpha: boolean;
}

const ANIMATED = "Animated WebP images are not supported. Send a still JPEG, PNG or WebP image.";

export function webpHeader(bytes: Uint8Array): WebpHeader {
  if (bytes.length < 20) throw undecodable("The WebP header is truncated.");
  const riffEnd = 8 + u32(bytes, 4);
  if (riffEnd > bytes.length) throw undecodable(`The WebP is truncated: its header says ${riffEnd} bytes, the body has ${bytes.length}.`);
  const chunks = readChunks(bytes, riffEnd);
  const first = chunks[0];
  if (!first) throw undecodable("The WebP has no image data.");
  const base = { type: "webp" as const, fileBytes: bytes.length, progressive: false as const };
  if (first.id === "VP8 " || first.id === "VP8L") {
    const image = imageChunk(bytes, first.id, first.start, first.end);
    return { ...base, ...image };
  }
  if (first.id !== "VP8X") throw undecodable(`The WebP starts with an unknown chunk ("${first.id}").`);
  if (first.end - first.start < 10) throw undecodable("The WebP's VP8X header is truncated.");
  const flags = bytes[first.start]!;
  if (flags & 0x02 || chunks.some((c) => c.id === "ANIM" || c.id === "ANMF")) throw new ImageError("unsupported_media_type", ANIMATED);
  const canvasWidth = u24(bytes, first.start + 4) + 1;
  const canvasHeight = u24(bytes, first.start + 7) + 1;
  const chunk = chunks.find((c) => c.id === "VP8 " || c.id === "VP8L");
  if (!chunk) throw undecodable("The WebP has no image data.");
  const image = imageChunk(bytes, chunk.id, chunk.start, chunk.end);
  // libwebp refuses a still image whose frame differs from the canvas; say so before decoding.
  if (image.width !== canvasWidth || image.height !== canvasHeight) {
    throw undecodable(`The WebP's canvas (${canvasWidth}x${canvasHeight}) and its image (${image.width}x${image.height}) differ.`);
  }
  const alpha = image.alpha || (flags & 0x10) !== 0 || chunks.some((c) => c.id === "ALPH");
  return { ...base, ...image, alpha };
}

interface Chunk {
  id: string;
  start: number; // payload
  end: number;
}

/**
 * Most chunks accepted in a WebP. A still image has at most VP8X, ICCP, ALPH, its VP8 or VP8L, EXIF and XMP
 * (RFC 9649, "Extended File Format") and sometimes an unknown chunk or two; animation is refused anyway. A
 * flood of empty chunks (half a million fit in 4 MiB) is refused here, before a list of them grows.
 */
export const MAX_WEBP_CHUNKS = 64;

/** The chunks after "WEBP", up to the RIFF size; a chunk that runs past it means a truncated or corrupt file. */
function readChunks(bytes: Uint8Array, riffEnd: number): Chunk[] {
  const chunks: Chunk[] = [];
  for (let at = 12; at + 8 <= riffEnd; ) {
    if (chunks.length === MAX_WEBP_CHUNKS) throw undecodable(`The WebP has more than ${MAX_WEBP_CHUNKS} chunks.`);
    const size = u32(bytes, at + 4);
    const end = at + 8 + size;
    if (end > riffEnd) throw undecodable("The WebP is truncated or a chunk's size is corrupt.");
    chunks.push({ id: String.fromCharCode(...bytes.subarray(at, at + 4)), start: at + 8, end });
    at = end + (size & 1); // chunks are padded to an even size
  }
  return chunks;
}

/** The frame header of a VP8 (RFC 6386, 9.1) or VP8L (the lossless bitstream specification, 3.2) chunk. */
function imageChunk(
  bytes: Uint8Array,
  id: string,
  start: number,
  end: number,
): { width: number; height: number; lossless: boolean; alpha: boolean } {
  if (id === "VP8 ") {
    if (end - start < 10) throw undecodable("The WebP's VP8 frame header is truncated.");
    // A 3-byte frame tag whose lowest bit is 0 for a key frame, then the start code 9d 01 2a, then 14-bit
    // width and height (the top 2 bits are upscaling hints the decoder ignores).
    const keyFrame = (bytes[start]! & 1) === 0;
    if (!keyFrame || bytes[start + 3] !== 0x9d || bytes[start + 4] !== 0x01 || bytes[start + 5] !== 0x2a) {
      throw undecodable("The WebP's VP8 frame header is corrupt.");
    }
    const width = u16(bytes, start + 6) & 0x3fff;
    const height = u16(bytes, start + 8) & 0x3fff;
    if (width === 0 || height === 0) throw undecodable("The WebP header says the image is empty.");
    return { width, height, lossless: false, alpha: false };
  }
  if (end - start < 5 || bytes[start] !== 0x2f) throw undecodable("The WebP's VP8L header is corrupt.");
  // Signature 0x2f, then 14 bits width - 1, 14 bits height - 1, 1 bit alpha, 3 bits version (0).
  const bits = u32(bytes, start + 1);
  if (bits >>> 29 !== 0) throw undecodable("The WebP's VP8L header has an unknown version.");
  return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, lossless: true, alpha: ((bits >>> 28) & 1) === 1 };
}

const u16 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
const u24 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
const u32 = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
