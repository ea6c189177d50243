/**
 * Tells the image type from its magic bytes (never from Content-Type, which clients get wrong) and reads the
 * dimensions from the header, so an image over the pixel limit is refused before any decoder allocates for it.
 */
import { ImageError, undecodable } from "./errors";
import { isStartOfFrame, jpegSegments } from "./jpeg-markers";

export type ImageType = "jpeg" | "png";

export interface ImageHeader {
  type: ImageType;
  width: number; // as stored, before any EXIF orientation
  height: number;
  /** A progressive JPEG: libjpeg keeps every DCT coefficient while decoding it, whatever the scale. */
  progressive: boolean;
}

const SUPPORTED = "Send a JPEG or PNG image.";
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Formats people commonly send that we recognise, to name them in the 415 message. */
const KNOWN_UNSUPPORTED: { name: string; matches: (b: Uint8Array) => boolean }[] = [
  { name: "WebP", matches: (b) => ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP" },
  { name: "GIF", matches: (b) => ascii(b, 0, 4) === "GIF8" },
  { name: "BMP", matches: (b) => ascii(b, 0, 2) === "BM" },
  { name: "TIFF", matches: (b) => ascii(b, 0, 4) === "II*\0" || ascii(b, 0, 4) === "MM\0*" },
  { name: "HEIC", matches: (b) => ascii(b, 4, 4) === "ftyp" && /^(heic|heix|mif1|msf1)$/.test(ascii(b, 8, 4)) },
  { name: "AVIF", matches: (b) => ascii(b, 4, 4) === "ftyp" && /^avi[fs]$/.test(ascii(b, 8, 4)) },
];

export function sniffImage(bytes: Uint8Array): ImageHeader {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return jpegHeader(bytes);
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return pngHeader(bytes);
  const known = KNOWN_UNSUPPORTED.find((f) => f.matches(bytes));
  throw new ImageError(
    "unsupported_media_type",
    known ? `${known.name} images are not supported. ${SUPPORTED}` : `The body is not a JPEG or PNG image. ${SUPPORTED}`,
  );
}

function jpegHeader(bytes: Uint8Array): ImageHeader {
  for (const s of jpegSegments(bytes)) {
    if (isStartOfFrame(s.marker)) {
      if (s.end - s.start < 6) throw undecodable("The JPEG frame header is corrupt.");
      // T.81 B.2.2: precision (1 byte), height (2), width (2). Height 0 (defined later by DNL) is legal
      // JPEG that libjpeg does not support, so it is refused here with the other unusable sizes.
      // SOF2, SOF6, SOF10, SOF14 are the progressive frames (T.81 Table B.1).
      const progressive = [0xc2, 0xc6, 0xca, 0xce].includes(s.marker);
      return checked("jpeg", u16(bytes, s.start + 3), u16(bytes, s.start + 1), progressive);
    }
  }
  throw undecodable("The JPEG has no frame header before its first scan.");
}

function pngHeader(bytes: Uint8Array): ImageHeader {
  // PNG spec 5.3 and 11.2.2: IHDR must come first; width and height are 4-byte big-endian, at most 2^31 - 1.
  if (bytes.length < 33 || ascii(bytes, 12, 4) !== "IHDR") throw undecodable("The PNG header is truncated or corrupt.");
  const width = u32(bytes, 16);
  const height = u32(bytes, 20);
  if (width > 0x7fffffff || height > 0x7fffffff) throw undecodable("The PNG header is corrupt.");
  return checked("png", width, height);
}

function checked(type: ImageType, width: number, height: number, progressive = false): ImageHeader {
  if (width === 0 || height === 0) throw undecodable(`The ${type.toUpperCase()} header says the image is empty.`);
  return { type, width, height, progressive };
}

function ascii(b: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...b.subarray(at, at + n));
}

const u16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
const u32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
