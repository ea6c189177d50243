/**
 * What the image pipeline will hold for one image, computed from its header before anything is decoded, so
 * the request can reserve it in the isolate's memory ledger (src/memory/budget.ts) or be refused with 413.
 * Every term is an upper bound on an allocation the pipeline makes; the decoder's wasm term is checked against
 * the real decoder's memory in test/image/cost.test.ts and must never come out lower.
 *
 * JPEG (src/image/jpeg.ts, libjpeg-turbo in wasm; measured figures in that test):
 * - the wasm memory: its initial 128 KiB, libjpeg's fixed state, a copy of the file, the raster at the chosen
 *   DCT scale, row buffers per component across the scaled width, and, when libjpeg buffers the whole image's
 *   DCT coefficients (progressive, or one component a scan), 2 bytes for every coefficient of every block;
 * - in JS: the raster copied out, its RGB conversion (CMYK), its EXIF-oriented copy.
 * PNG: non-interlaced ones stream (src/image/png-stream.ts: the inflater's buffers and two rows) into the
 * row-by-row resize; interlaced ones decode whole (src/image/png.ts: the inflater, two rows, the raster).
 * WebP (src/image/webp.ts, libwebp in wasm): its initial memory, fixed state, a copy of the file, rows across
 * the full width (lossy), the whole image at 4 bytes a pixel and more (lossless, and any alpha plane), the
 * rescaler and the output at the decoded size; in JS the raster copied out (RGB).
 * Then, for all, preprocessing (src/image/preprocess.ts): grey conversion, the resize's filter taps, its
 * horizontal pass over the source rows the crop needs, its output, and the input tensor.
 */
import { DECODE_OVERSAMPLING } from "../config";
import type { InputShape, Preprocess } from "../package/manifest";
import { dctScale } from "./jpeg";
import { JPEG_STREAM_WASM_INITIAL_BYTES } from "./jpeg-stream";
import { INFLATE_PIECE_BYTES } from "./png";
import { SAMPLES } from "./png-chunks";
import { pngStreamBytes } from "./png-stream";
import { resizedSize } from "./preprocess";
import { rowPreprocessBytes } from "./row-preprocess";
import type { ImageHeader, JpegHeader, PngHeader, WebpHeader } from "./sniff";
import { WEBP_WASM_INITIAL_BYTES, webpDecodeSize } from "./webp";

const PAGE = 64 * 1024;
/** The jpeg-turbo module's initial memory (2 pages, measured). */
const WASM_INITIAL_BYTES = 128 * 1024;
/**
 * libjpeg's fixed state, Huffman and quantisation tables and allocator slack: ~330 KiB measured on a
 * 240x65000 image, where the other terms are exact; never more than 320 KiB over the terms below on the
 * fixtures (test/image/cost.test.ts).
 */
const LIBJPEG_FIXED_BYTES = 384 * 1024;
/**
 * Row buffers per scaled output column, per component and per vertical sampling factor: libjpeg's main
 * buffer, upsampler and colour converter. Measured up to ~11 (8000x240 at 4:4:4, full scale); 24 leaves a
 * 2x margin.
 */
const ROW_BYTES_PER_COLUMN = 24;
/**
 * libwebp's fixed state: decoder structs, its malloc's bookkeeping, and for lossless the Huffman tables
 * (sized by the bitstream: a 1000x750 lossless photo needed ~0.2 B a pixel for tables and transforms
 * together, measured). An image that needs more fails to allocate inside the capped memory (422) rather than
 * exceed its reservation.
 */
const WEBP_FIXED_BYTES = 256 * 1024;
const WEBP_LOSSLESS_TABLE_BYTES = 512 * 1024;
/**
 * Lossy (frame_dec.c, AllocateMemory): per 16-pixel macroblock column its intra modes, top samples, filter
 * info, coefficients (~800 bytes) and 36 rows of YUV cache at 32 bytes: ~2 KB, so ~125 bytes per column of
 * full width; 160 leaves a margin.
 */
const WEBP_LOSSY_BYTES_PER_COLUMN = 160;
/**
 * Lossless (vp8l_dec.c, AllocateInternalBuffers32b): ARGB for every pixel (4 bytes) and 32 rows of cache,
 * plus its transforms' and entropy image's subsampled data: 4.2 bytes a pixel in all on a 1000x750 photo
 * (measured); 4.25 and WEBP_LOSSLESS_TABLE_BYTES cover it. Worst case (every subsampled image at its finest,
 * 1/16 of the pixels) would be 4.75: such a file fails inside its capped memory with a 422.
 * Lossy with alpha: the alpha plane twice (alpha_dec.c and frame_dec.c each allocate width x height) and its
 * own VP8L decoder at full size: 6.08 bytes a pixel measured at 1920x1080.
 */
const WEBP_LOSSLESS_BYTES_PER_PIXEL = 4.25;
const WEBP_ALPHA_PLANE_BYTES_PER_PIXEL = 2;
const WEBP_LOSSLESS_BYTES_PER_COLUMN = 32 * 4;
/** The rescaler's work rows (io_dec.c, InitRGBRescaler): per output column and channel, 2 x 4 + 1 bytes. */
const WEBP_RESCALER_BYTES_PER_COLUMN = 4 * 9;

/** zlib's state and window, a piece of compressed input in flight and the inflater's queued 4 KiB outputs. */
const INFLATER_BYTES = 3 * INFLATE_PIECE_BYTES + 128 * 1024;

export interface ImageCost {
  /** The JPEG or WebP decoder's wasm memory at its largest; a streamed PNG's decoder buffers (0 for an interlaced PNG). */
  decoderBytes: number;
  /** Decoded rasters held in JS (raster, conversions, orientation) and the PNG inflater. */
  rasterBytes: number;
  /** Preprocessing's buffers and the input tensor. */
  preprocessBytes: number;
  total: number;
}

/** The bytes the pipeline holds, at most, to turn this image into the model's input. */
export function imageWorkingBytes(
  header: ImageHeader,
  preprocess: Preprocess,
  input: InputShape,
  decodeSide = preprocess.resize.shorter_side,
): number {
  return imageCost(header, preprocess, input, decodeSide).total;
}

/** `decodeSide`: the shorter side a JPEG or WebP is decoded to at least (scaledDecodeSide). */
export function imageCost(
  header: ImageHeader,
  preprocess: Preprocess,
  input: InputShape,
  decodeSide = preprocess.resize.shorter_side,
): ImageCost {
  if (header.type === "png" && !header.interlaced) {
    // Decoded row by row (png-stream.ts) into the row-by-row resize (row-preprocess.ts): no raster, no copy of
    // the file, nothing that grows with the height but the resize's taps (8 bytes a row).
    const { width, height, depth, colorType } = header;
    const decoderBytes = pngStreamBytes(width, depth, colorType);
    const preprocessBytes = rowPreprocessBytes({ width, height, channels: colorType === 0 ? 1 : 3 }, preprocess, input);
    return { decoderBytes, rasterBytes: 0, preprocessBytes, total: decoderBytes + preprocessBytes };
  }
  const { decoderBytes, rasterBytes, raster } =
    header.type === "jpeg" ? jpegCost(header, decodeSide) : header.type === "webp" ? webpCost(header, decodeSide) : pngCost(header);
  const preprocessBytes = preprocessCost(raster.width, raster.height, raster.channels, preprocess, input);
  return { decoderBytes, rasterBytes, preprocessBytes, total: decoderBytes + rasterBytes + preprocessBytes };
}

/**
 * The shorter side a JPEG or WebP is decoded to at least (DCT scaling picks the smallest n/8 that reaches it;
 * libwebp scales to it exactly): DECODE_OVERSAMPLING times the resize, the closer match to training's
 * full decode, when that fits MAX_IMAGE_WORKING_BYTES; else the resize itself, which halves the raster (the
 * top-1 was the same either way, measured on JPEGs).
 */
export function scaledDecodeSide(header: ImageHeader, preprocess: Preprocess, input: InputShape, maxBytes: number): number {
  const oversampled = DECODE_OVERSAMPLING * preprocess.resize.shorter_side;
  if (header.type === "png" || imageWorkingBytes(header, preprocess, input, oversampled) <= maxBytes) return oversampled;
  return preprocess.resize.shorter_side;
}

interface Decoded {
  decoderBytes: number;
  rasterBytes: number;
  raster: { width: number; height: number; channels: 1 | 3 };
}

/** libjpeg-turbo's wasm memory for this header at the DCT scale jpeg.ts will choose. */
export function jpegDecoderBytes(header: JpegHeader, shorterSide: number): number {
  const { width, height, components } = header;
  const n = dctScale(width, height, shorterSide);
  const w = Math.ceil((width * n) / 8);
  const h = Math.ceil((height * n) / 8);
  const outChannels = components.length === 1 ? 1 : components.length === 4 ? 4 : 3; // CMYK comes out as 4
  const hMax = Math.max(...components.map((c) => c.h));
  const vMax = Math.max(...components.map((c) => c.v));
  // jdcoefct.c: a whole-image array of JBLOCKs (64 x 2 bytes) per component, its size in blocks rounded
  // up to the component's sampling factors.
  const coefficients = header.buffersCoefficients
    ? components.reduce((sum, c) => {
        const { blocksWide, blocksHigh } = componentBlocks(header, c, hMax, vMax);
        return sum + blocksWide * blocksHigh * 128;
      }, 0)
    : 0;
  const rows = w * components.length * ROW_BYTES_PER_COLUMN * vMax;
  const total = WASM_INITIAL_BYTES + LIBJPEG_FIXED_BYTES + header.fileBytes + w * h * outChannels + coefficients + rows;
  return roundUp(total, PAGE);
}

function jpegCost(header: JpegHeader, decodeSide: number): Decoded {
  const n = dctScale(header.width, header.height, decodeSide);
  const width = Math.ceil((header.width * n) / 8);
  const height = Math.ceil((header.height * n) / 8);
  const channels = header.components.length === 1 ? 1 : 3;
  const pixels = width * height;
  const copied = pixels * (header.components.length === 4 ? 4 + 3 : channels); // CMYK: the copy and its RGB
  const oriented = pixels * channels; // applyOrientation's copy, counted whether or not EXIF asks for one
  return { decoderBytes: jpegDecoderBytes(header, decodeSide), rasterBytes: copied + oriented, raster: { width, height, channels } };
}

/**
 * What the streaming JPEG decoder (src/image/jpeg-stream.ts) may count for this header at the DCT scale it
 * will choose: libjpeg's fixed state, its 128 KiB input window, row buffers across the scaled width and, for a
 * file that buffers coefficients, the coefficient store. The store keeps per block only what the component's
 * scaled IDCT reads (docs/jpeg-decoder.md, "What each IDCT reads"): 2 bytes per coefficient read, a bit per
 * other coefficient in a progressive file (refinement scans need to know which were nonzero), plus strips of
 * whole blocks. No file copy and no raster: rows leave as they are decoded. This is also the decoder's cap.
 */
export function jpegStreamCountedBytes(header: JpegHeader, decodeSide: number): number {
  const { width, height, components } = header;
  const n = dctScale(width, height, decodeSide);
  const w = Math.ceil((width * n) / 8);
  const hMax = Math.max(...components.map((c) => c.h));
  const vMax = Math.max(...components.map((c) => c.v));
  const coefficients = header.buffersCoefficients
    ? components.reduce((sum, c) => {
        const { blocksWide, blocksHigh } = componentBlocks(header, c, hMax, vMax);
        const k = idctSize(n, c, hMax, vMax);
        const stripRows = (header.progressive ? 5 : 1) * c.v;
        // An array no taller than its strip stays whole, at full blocks.
        if (k >= 8 || blocksHigh <= stripRows) return sum + blocksWide * blocksHigh * 128;
        const perBlock = 2 * IDCT_READS[k]! + (header.progressive && k > 1 ? Math.ceil((64 - IDCT_READS[k]!) / 8) : 0);
        return sum + blocksWide * blocksHigh * perBlock + blocksWide * stripRows * 128;
      }, 0)
    : 0;
  const rows = w * components.length * ROW_BYTES_PER_COLUMN * vMax;
  return roundUp(LIBJPEG_FIXED_BYTES + JPEG_STREAM_WINDOW_BYTES + coefficients + rows, PAGE);
}

/** A component's whole-image coefficient array in blocks (jdcoefct.c), rounded up to its sampling factors. */
function componentBlocks(header: JpegHeader, c: { h: number; v: number }, hMax: number, vMax: number) {
  return {
    blocksWide: roundUp(Math.ceil(Math.ceil((header.width * c.h) / hMax) / 8), c.h),
    blocksHigh: roundUp(Math.ceil(Math.ceil((header.height * c.v) / vMax) / 8), c.v),
  };
}

/**
 * Coefficients a k x k scaled IDCT reads, by k: libjpeg 6b's reduced 2x2 and 4x4 (jidctred.c) drop outputs of
 * the 8-point transform and read rows and columns {0,1,3,5,7} and {0,1,2,3,5,6,7}; the others (jidctint.c)
 * read the top-left k x k.
 */
const IDCT_READS = [0, 1, 25, 9, 49, 25, 36, 49, 64];

/** A component's IDCT size at scale n/8 (jdmaster.c): subsampled components get a larger one instead of upsampling. */
function idctSize(n: number, c: { h: number; v: number }, hMax: number, vMax: number): number {
  let size = n;
  while (size < 8 && (hMax * n) % (c.h * size * 2) === 0 && (vMax * n) % (c.v * size * 2) === 0) size *= 2;
  return size;
}

/** The streaming decoder's input window (scripts/jpeg/jpeg-shim.c) and a chunk on its way in. */
const JPEG_STREAM_WINDOW_BYTES = 128 * 1024 + 64 * 1024;

/**
 * A JPEG decoded as a stream into the row-by-row preprocess: the decoder's wasm memory at its largest (its cap,
 * malloc's overhead and initial pages: jpeg-stream.ts sizes its memory so), the rows one push hands out (at
 * most the scaled image, when the whole file comes at once) and the preprocess.
 */
export function jpegStreamCost(header: JpegHeader, preprocess: Preprocess, input: InputShape, decodeSide: number): ImageCost {
  const counted = jpegStreamCountedBytes(header, decodeSide);
  const decoderBytes = JPEG_STREAM_WASM_INITIAL_BYTES + counted + Math.ceil(counted / 16) + 1024 * 1024;
  const n = dctScale(header.width, header.height, decodeSide);
  const [w, h] = [Math.ceil((header.width * n) / 8), Math.ceil((header.height * n) / 8)];
  const rasterBytes = w * h * 3;
  const preprocessBytes = 2 * rowPreprocessBytes({ width: w, height: h, channels: 3 }, preprocess, input);
  return { decoderBytes, rasterBytes, preprocessBytes, total: decoderBytes + rasterBytes + preprocessBytes };
}

/** libwebp's wasm memory for this header at the size webp.ts will ask for; also that decode's memory cap. */
export function webpDecoderBytes(header: WebpHeader, decodeSide: number): number {
  const { width, height, fileBytes, lossless, alpha } = header;
  const out = webpDecodeSize(width, height, decodeSide);
  const channels = alpha ? 4 : 3;
  const pixels = width * height;
  const frame = lossless
    ? WEBP_LOSSLESS_TABLE_BYTES + WEBP_LOSSLESS_BYTES_PER_PIXEL * pixels + WEBP_LOSSLESS_BYTES_PER_COLUMN * width
    : WEBP_LOSSY_BYTES_PER_COLUMN * width +
      (alpha ? WEBP_LOSSLESS_TABLE_BYTES + (WEBP_ALPHA_PLANE_BYTES_PER_PIXEL + WEBP_LOSSLESS_BYTES_PER_PIXEL) * pixels : 0);
  const rescaler = out.width === width && out.height === height ? 0 : WEBP_RESCALER_BYTES_PER_COLUMN * out.width;
  const total = WEBP_WASM_INITIAL_BYTES + WEBP_FIXED_BYTES + fileBytes + frame + rescaler + out.width * out.height * channels;
  return roundUp(Math.ceil(total), PAGE);
}

function webpCost(header: WebpHeader, decodeSide: number): Decoded {
  const { width, height } = webpDecodeSize(header.width, header.height, decodeSide);
  return { decoderBytes: webpDecoderBytes(header, decodeSide), rasterBytes: width * height * 3, raster: { width, height, channels: 3 } };
}

function pngCost(header: PngHeader): Decoded {
  const { width, height, depth, colorType } = header;
  const channels = colorType === 0 ? 1 : 3;
  const rowBytes = 1 + Math.ceil((width * SAMPLES[colorType]! * depth) / 8);
  const rows = 2 * rowBytes + width * SAMPLES[colorType]!; // line, prev, and one row of 8-bit samples
  return { decoderBytes: 0, rasterBytes: INFLATER_BYTES + rows + width * height * channels, raster: { width, height, channels } };
}

/** toInputTensor's allocations for a raster of this size (src/image/preprocess.ts, resize.ts). */
function preprocessCost(width: number, height: number, channels: 1 | 3, preprocess: Preprocess, input: InputShape): number {
  const luma = preprocess.color === "gray" && channels === 3 ? width * height : 0;
  const c = preprocess.color === "gray" ? 1 : channels;
  const size = resizedSize(width, height, preprocess.resize.shorter_side);
  const { height: wh, width: ww } = input;
  const support = (inSize: number, outSize: number) => Math.ceil(Math.max(1, inSize / outSize));
  // axisTaps: first and count (Int32) and weights (Float32, 2 * support + 1 per output index), both axes.
  const taps = ww * (8 + 4 * (2 * support(width, size.width) + 1)) + wh * (8 + 4 * (2 * support(height, size.height) + 1));
  // resizeWindow's horizontal pass keeps the source rows the window's rows read: the window's share of the
  // resized height, scaled back, plus the filter's reach at both ends.
  const rowSpan = Math.min(height, Math.ceil(((wh + 1) * height) / size.height) + 2 * support(height, size.height) + 2);
  const horizontal = rowSpan * ww * c * 4;
  const window = wh * ww * c * 4;
  const tensor = input.height * input.width * input.channels * 4;
  return luma + taps + horizontal + window + tensor;
}

const roundUp = (value: number, step: number): number => Math.ceil(value / step) * step;
