/**
 * Tells the image type from its magic bytes (never from Content-Type, which clients get wrong) and reads the
 * dimensions from the header, so an image over the pixel limit is refused before any decoder allocates for it.
 */
import { ImageError, undecodable } from "./errors";
import { isStartOfFrame, jpegSegments, SOS, checkJpegScans } from "./jpeg-markers";
import { readPngChunks } from "./png-chunks";
import { webpHeader, type WebpHeader } from "./webp-header";

export type ImageType = "jpeg" | "png" | "webp";

interface HeaderBase {
  width: number; // as stored, before any EXIF orientation
  height: number;
  /** The file's size in bytes: a JPEG decoder holds a copy of it. */
  fileBytes: number;
}

export interface JpegHeader extends HeaderBase {
  type: "jpeg";
  /** A progressive JPEG: libjpeg keeps every DCT coefficient while decoding it, whatever the scale. */
  progressive: boolean;
  /** Each component's sampling factors (T.81 B.2.2), which size libjpeg's buffers. */
  components: { h: number; v: number }[];
  /**
   * libjpeg buffers the whole image's DCT coefficients: progressive JPEGs, and sequential ones whose first
   * scan does not carry every component (their scans come one component at a time; jdinput.c).
   */
  buffersCoefficients: boolean;
}

export interface PngHeader extends HeaderBase {
  type: "png";
  progressive: false;
  depth: number;
  colorType: number;
  /** Adam7-interlaced: decoded whole (decodePng), not row by row. */
  interlaced: boolean;
}

export type { WebpHeader };
export type ImageHeader = JpegHeader | PngHeader | WebpHeader;

const SUPPORTED = "Send a JPEG, PNG or WebP image.";
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Formats people commonly send that we recognise, to name them in the 415 message. */
const KNOWN_UNSUPPORTED: { name: string; matches: (b: Uint8Array) => boolean }[] = [
  { name: "GIF", matches: (b) => ascii(b, 0, 4) === "GIF8" },
  { name: "BMP", matches: (b) => ascii(b, 0, 2) === "BM" },
  { name: "TIFF", matches: (b) => ascii(b, 0, 4) === "II*\0" || ascii(b, 0, 4) === "MM\0*" },
  { name: "HEIC", matches: (b) => ascii(b, 4, 4) === "ftyp" && /^(heic|heix|mif1|msf1)$/.test(ascii(b, 8, 4)) },
  { name: "AVIF", matches: (b) => ascii(b, 4, 4) === "ftyp" && /^avi[fs]$/.test(ascii(b, 8, 4)) },
];

export function sniffImage(bytes: Uint8Array): ImageHeader {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return jpegHeader(bytes);
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return pngHeader(bytes);
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") return webpHeader(bytes);
  const known = KNOWN_UNSUPPORTED.find((f) => f.matches(bytes));
  throw new ImageError(
    "unsupported_media_type",
    known ? `${known.name} images are not supported. ${SUPPORTED}` : `The body is not a JPEG, PNG or WebP image. ${SUPPORTED}`,
  );
}

function jpegHeader(bytes: Uint8Array): JpegHeader {
  let frame: Omit<JpegHeader, "buffersCoefficients"> | undefined;
  for (const s of jpegSegments(bytes)) {
    if (isStartOfFrame(s.marker)) {
      // T.81 B.2.2: precision (1 byte), height (2), width (2), component count Nf (1), then per component
      // its id (1), sampling factors H << 4 | V (1) and quantisation table (1). Height 0 (defined later by
      // DNL) is legal JPEG that libjpeg does not support, so it is refused with the other unusable sizes.
      // SOF2, SOF6, SOF10, SOF14 are the progressive frames (T.81 Table B.1).
      if (frame) throw undecodable("The JPEG has more than one frame header.");
      const count = s.end - s.start >= 6 ? bytes[s.start + 5]! : 0;
      if (count === 0 || s.end - s.start < 6 + 3 * count) throw undecodable("The JPEG frame header is corrupt.");
      const components = Array.from({ length: count }, (_, i) => {
        const factors = bytes[s.start + 7 + 3 * i]!;
        return { h: factors >> 4, v: factors & 15 };
      });
      if (components.some((c) => c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4)) throw undecodable("The JPEG frame header is corrupt.");
      const [width, height] = nonEmpty("JPEG", u16(bytes, s.start + 3), u16(bytes, s.start + 1));
      const progressive = [0xc2, 0xc6, 0xca, 0xce].includes(s.marker);
      frame = { type: "jpeg", width, height, fileBytes: bytes.length, progressive, components };
    } else if (s.marker === SOS) {
      if (!frame) break;
      // B.2.3: the scan header starts with its component count Ns.
      const inScan = s.end > s.start ? bytes[s.start]! : 0;
      checkJpegScans(bytes);
      return { ...frame, buffersCoefficients: frame.progressive || inScan < frame.components.length };
    }
  }
  throw undecodable(frame ? "The JPEG has no image data." : "The JPEG has no frame header before its first scan.");
}

function pngHeader(bytes: Uint8Array): PngHeader {
  // The header the decoder will use: readPngChunks checks the chunk order (one IHDR, first) for both.
  const png = readPngChunks(bytes);
  const [width, height] = nonEmpty("PNG", png.width, png.height);
  return {
    type: "png",
    width,
    height,
    fileBytes: bytes.length,
    progressive: false,
    depth: png.depth,
    colorType: png.colorType,
    interlaced: png.interlaced,
  };
}

function nonEmpty(type: string, width: number, height: number): [number, number] {
  if (width === 0 || height === 0) throw undecodable(`The ${type} header says the image is empty.`);
  return [width, height];
}

function ascii(b: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...b.subarray(at, at + n));
}

const u16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
