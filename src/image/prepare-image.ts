/**
 * The image pipeline in two calls, so the caller can reserve memory between them:
 * - planImage: sniff (415) -> the header's pixel limits and computed working memory (413), nothing decoded;
 * - prepareImage: decode (422) -> EXIF orientation (JPEG) -> preprocess, into the model's input tensor.
 * Non-interlaced PNGs skip the raster: rows go from the streaming decoder into the row-by-row resize
 * (pngRowsToTensor), which also reads them straight from a request body.
 */
import {
  DECODE_OVERSAMPLING,
  MAX_IMAGE_WORKING_BYTES,
  MAX_INTERLACED_PNG_PIXELS,
  MAX_JPEG_PIXELS,
  MAX_PNG_PIXELS,
  MAX_PROGRESSIVE_JPEG_PIXELS,
  MAX_WEBP_ALPHA_PIXELS,
  MAX_WEBP_LOSSLESS_PIXELS,
  MAX_WEBP_PIXELS,
} from "../config";
import type { InputShape, Preprocess } from "../package/manifest";
import { imageWorkingBytes, jpegStreamCost, scaledDecodeSide, webpDecoderBytes } from "./cost";
import type { JpegStreamPlan } from "./jpeg-rows";
import { ImageError } from "./errors";
import { decodeJpeg } from "./jpeg";
import { applyOrientation, readJpegOrientation, swapsAxes } from "./orientation";
import { decodePng } from "./png";
import { createPngStream } from "./png-stream";
import { toInputTensor } from "./preprocess";
import type { Raster } from "./raster";
import { createRowPreprocessor, type RowPreprocessor } from "./row-preprocess";
import { type ImageHeader, type JpegHeader, sniffImage } from "./sniff";
import { decodeWebp, webpDecodeSize } from "./webp";

export interface ImagePlan {
  header: ImageHeader;
  /** What decoding and preprocessing will hold at most (src/image/cost.ts), to reserve before decoding. */
  workingBytes: number;
  /** JPEG and WebP: the shorter side to decode to at least (src/image/cost.ts, scaledDecodeSide). */
  decodeSide: number;
}

export interface PreparedImage {
  tensor: Float32Array; // input.height * input.width * input.channels, NHWC, normalised
  decodeMs: number; // decode + orientation
  preprocessMs: number; // colour, resize, crop, normalise
  source: { type: "jpeg" | "png" | "webp"; width: number; height: number }; // full size, as displayed (EXIF applied)
}

/** Reads the header and refuses (413) an image over its pixel limit or whose decoding would not fit the budget. */
/** `maxBytes`: what the decode may hold, by default one image's share beside a held multipart body. */
export function planImage(bytes: Uint8Array, preprocess: Preprocess, input: InputShape, maxBytes = MAX_IMAGE_WORKING_BYTES): ImagePlan {
  return planHeader(sniffImage(bytes), preprocess, input, maxBytes);
}

/** planImage for a header already read (a streamed PNG's, from its first bytes). */
export function planHeader(header: ImageHeader, preprocess: Preprocess, input: InputShape, maxBytes = MAX_IMAGE_WORKING_BYTES): ImagePlan {
  refuseOverLimit(header);
  const decodeSide = scaledDecodeSide(header, preprocess, input, maxBytes);
  const workingBytes = imageWorkingBytes(header, preprocess, input, decodeSide);
  if (workingBytes > maxBytes) {
    const { width, height } = header;
    throw new ImageError(
      "image_too_large",
      `Decoding this ${width}x${height} ${kind(header)} would need ${mib(workingBytes)} MiB; an image may use at most ${mib(maxBytes)} MiB. Send it smaller or less elongated.`,
    );
  }
  return { header, workingBytes, decodeSide };
}

export async function prepareImage(bytes: Uint8Array, preprocess: Preprocess, input: InputShape, plan?: ImagePlan): Promise<PreparedImage> {
  const { header, decodeSide } = plan ?? planImage(bytes, preprocess, input);
  if (header.type === "png" && !header.interlaced) return pngRowsToTensor(oneChunk(bytes), preprocess, input);
  const start = performance.now();
  let image: Raster;
  let { width, height } = header;
  if (header.type === "jpeg") {
    const orientation = readJpegOrientation(bytes);
    image = applyOrientation(decodeJpeg(bytes, decodeSide).image, orientation);
    if (swapsAxes(orientation)) [width, height] = [height, width];
  } else if (header.type === "webp") {
    // Capped at the memory the cost model reserved for it (webp.ts says why).
    const size = webpDecodeSize(width, height, decodeSide);
    image = decodeWebp(bytes, size, header.alpha, preprocess.background, webpDecoderBytes(header, decodeSide)).image;
  } else {
    image = await decodePng(bytes, preprocess.background);
  }
  const decoded = performance.now();
  const tensor = toInputTensor(image, preprocess, input);
  return {
    tensor,
    decodeMs: decoded - start,
    preprocessMs: performance.now() - decoded,
    source: { type: header.type, width, height },
  };
}

/**
 * The plan of a JPEG that streams (jpeg-rows.ts): its pixel limit, then the decode side (twice the resize when
 * that fits `maxBytes`, else the resize) and the memory the streaming decode holds, refused (413) over `maxBytes`.
 */
export function planJpegStream(header: JpegHeader, preprocess: Preprocess, input: InputShape, maxBytes: number): JpegStreamPlan {
  refuseOverLimit(header);
  const oversampled = DECODE_OVERSAMPLING * preprocess.resize.shorter_side;
  const fits = jpegStreamCost(header, preprocess, input, oversampled).total <= maxBytes;
  const decodeSide = fits ? oversampled : preprocess.resize.shorter_side;
  const workingBytes = jpegStreamCost(header, preprocess, input, decodeSide).total;
  if (workingBytes > maxBytes) {
    throw new ImageError(
      "image_too_large",
      `Decoding this ${header.width}x${header.height} ${kind(header)} would need ${mib(workingBytes)} MiB; an image may use at most ${mib(maxBytes)} MiB.`,
    );
  }
  return { header, decodeSide, workingBytes };
}

/**
 * A non-interlaced PNG decoded row by row into the model's input: neither the file nor a raster is held, so
 * `chunks` can be a request body as it arrives. The header is checked against the pixel limit as soon as it
 * is read (a caller that has not planned the image, reading a body, learns it here).
 */
export async function pngRowsToTensor(
  chunks: AsyncIterable<Uint8Array>,
  preprocess: Preprocess,
  input: InputShape,
): Promise<PreparedImage> {
  const start = performance.now();
  let rows: RowPreprocessor | undefined;
  const png = createPngStream({
    background: preprocess.background,
    onHeader: (header) => {
      refuseOverLimit({ type: "png", progressive: false, fileBytes: 0, interlaced: false, ...header });
      rows = createRowPreprocessor(header, preprocess, input);
    },
    onRow: (row) => rows!.push(row),
  });
  try {
    for await (const chunk of chunks) await png.push(chunk);
    const { width, height } = await png.finish();
    const decoded = performance.now();
    const tensor = rows!.finish();
    return { tensor, decodeMs: decoded - start, preprocessMs: performance.now() - decoded, source: { type: "png", width, height } };
  } catch (error) {
    png.cancel(error);
    throw error;
  }
}

async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function refuseOverLimit(header: ImageHeader): void {
  const { width, height } = header;
  const limit = pixelLimit(header);
  if (width * height > limit) {
    throw new ImageError(
      "image_too_large",
      `The ${kind(header)} is ${width}x${height} (${width * height} pixels); the limit is ${limit} pixels.`,
    );
  }
}

function pixelLimit(header: ImageHeader): number {
  if (header.type === "png") return header.interlaced ? MAX_INTERLACED_PNG_PIXELS : MAX_PNG_PIXELS;
  if (header.type === "webp") return header.lossless ? MAX_WEBP_LOSSLESS_PIXELS : header.alpha ? MAX_WEBP_ALPHA_PIXELS : MAX_WEBP_PIXELS;
  return header.progressive ? MAX_PROGRESSIVE_JPEG_PIXELS : MAX_JPEG_PIXELS;
}

function kind(header: ImageHeader): string {
  if (header.type === "png") return header.interlaced ? "interlaced PNG" : "PNG";
  if (header.type === "webp") return header.lossless ? "lossless WebP" : header.alpha ? "WebP with alpha" : "WebP";
  return header.progressive ? "progressive JPEG" : header.type.toUpperCase();
}
const mib = (bytes: number): string => (bytes / 1048576).toFixed(1);
