/**
 * The image pipeline in one call: bytes of a JPEG or PNG in, the model's input tensor out.
 * sniff (415) -> pixel limit from the header (413) -> decode (422) -> EXIF orientation -> preprocess.
 */
import { JPEG_DECODE_OVERSAMPLING, MAX_JPEG_PIXELS, MAX_PNG_PIXELS, MAX_PROGRESSIVE_JPEG_PIXELS } from "../config";
import type { InputShape, Preprocess } from "../model/manifest";
import { ImageError } from "./errors";
import { decodeJpeg } from "./jpeg";
import { applyOrientation, readJpegOrientation, swapsAxes } from "./orientation";
import { decodePng } from "./png";
import { toInputTensor } from "./preprocess";
import type { Raster } from "./raster";
import { type ImageHeader, sniffImage } from "./sniff";

export interface PreparedImage {
  tensor: Float32Array; // input.height * input.width * input.channels, NHWC, normalised
  decodeMs: number; // header probe + decode + orientation
  preprocessMs: number; // colour, resize, crop, normalise
  source: { type: "jpeg" | "png"; width: number; height: number }; // full size, as displayed (EXIF applied)
}

export async function prepareImage(bytes: Uint8Array, preprocess: Preprocess, input: InputShape): Promise<PreparedImage> {
  const start = performance.now();
  const header = sniffImage(bytes);
  refuseOverLimit(header);
  let image: Raster;
  let { width, height } = header;
  if (header.type === "jpeg") {
    const orientation = readJpegOrientation(bytes);
    const minShorterSide = JPEG_DECODE_OVERSAMPLING * preprocess.resize.shorter_side;
    image = applyOrientation(decodeJpeg(bytes, minShorterSide).image, orientation);
    if (swapsAxes(orientation)) [width, height] = [height, width];
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

function refuseOverLimit({ type, width, height, progressive }: ImageHeader): void {
  const limit = type === "png" ? MAX_PNG_PIXELS : progressive ? MAX_PROGRESSIVE_JPEG_PIXELS : MAX_JPEG_PIXELS;
  if (width * height > limit) {
    const what = progressive ? "progressive JPEG" : type.toUpperCase();
    throw new ImageError("image_too_large", `The ${what} is ${width}x${height} (${width * height} pixels); the limit is ${limit} pixels.`);
  }
}
