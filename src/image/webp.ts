/**
 * WebP decoding with libwebp 1.2.4's decoder compiled to wasm by scripts/build-webp-wasm.sh (Debian 12's
 * source package 1.2.4-0.2+deb12u1, Emscripten 3.1.6; src/image/webp/libwebp-dec.wasm, 235143 bytes,
 * sha256 dd3cb75a6ce095a9db5321a36f086806b6f89e199173e15dd29a978909a95e55). wrangler bundles the .wasm
 * as a precompiled module, which we instantiate here (Workers cannot compile wasm from bytes).
 *
 * Why these choices (measurements in docs/platform-notes.md, "WebP"):
 * - libwebp scales while it decodes (WebPDecoderConfig.options.use_scaling): a lossy WebP is decoded row by
 *   row into its rescaler, so a 12 MP photo costs ~2 MiB of wasm memory instead of ~35 MiB at full size.
 *   Lossless (VP8L) and alpha planes are decoded in full before scaling, hence their lower pixel limit.
 * - A fresh instance and memory per decode, as jpeg.ts does: a wasm memory never shrinks, and a decoder
 *   that failed half-way must never serve the next image.
 * - The memory is ours (the module imports it) with a maximum: what the cost model reserved for this image.
 *   A hostile file that asks for more (libwebp sizes its Huffman tables from the bitstream) makes libwebp's
 *   malloc fail, which it reports as an error: a 422, never more memory than the request reserved.
 */
import libwebp from "./webp/libwebp-dec.wasm";
import { compositeSample } from "./color";
import { trackDecoderMemory } from "./decoder-memory";
import { ImageError, undecodable } from "./errors";
import { resizedSize } from "./preprocess";
import type { Raster } from "./raster";

interface LibWebp {
  _initialize(): void;
  malloc(bytes: number): number;
  free(pointer: number): void;
  webp_decode_scaled(data: number, size: number, width: number, height: number, withAlpha: number): number;
  webp_last_status(): number;
}

/** libwebp's VP8StatusCode (src/webp/decode.h). */
const STATUS: Record<number, string> = {
  1: "needs more memory than reserved for an image of its size",
  2: "uses a parameter the decoder refuses",
  3: "has a corrupt bitstream",
  4: "uses a feature the decoder does not support",
  5: "was suspended",
  6: "was cancelled",
  7: "is truncated",
};

const PAGE = 64 * 1024;
/** The module's declared initial memory (INITIAL_MEMORY in scripts/build-webp-wasm.sh): stack and data. */
export const WEBP_WASM_INITIAL_BYTES = 4 * PAGE;

export interface DecodedWebp {
  image: Raster; // at the decoded size, alpha composited over the background
  memoryBytes: number; // the decoder's wasm memory at its largest, for tests and the benchmark
}

/**
 * The size libwebp is asked for: the resize's shape (torchvision's rounding, preprocess.ts) at a shorter side
 * of `minShorterSide`, or the image's own size when it is no larger (never scaled up).
 */
export function webpDecodeSize(width: number, height: number, minShorterSide: number): { width: number; height: number } {
  if (Math.min(width, height) <= minShorterSide) return { width, height };
  const size = resizedSize(width, height, minShorterSide);
  return { width: Math.max(1, size.width), height: Math.max(1, size.height) };
}

/**
 * Decodes to webpDecodeSize(...) in at most `maxMemoryBytes` of wasm memory. With alpha, RGBA comes out and
 * is composited over `background` with Pillow's arithmetic, as png.ts does. Every failure is an ImageError (422).
 */
export function decodeWebp(
  bytes: Uint8Array,
  size: { width: number; height: number },
  alpha: boolean,
  background: readonly [number, number, number],
  maxMemoryBytes: number,
): DecodedWebp {
  const memory = new WebAssembly.Memory({
    initial: WEBP_WASM_INITIAL_BYTES / PAGE,
    maximum: Math.max(WEBP_WASM_INITIAL_BYTES, Math.ceil(maxMemoryBytes / PAGE) * PAGE) / PAGE,
  });
  const release = trackDecoderMemory(memory);
  try {
    const webp = new WebAssembly.Instance(libwebp, { env: { memory, emscripten_notify_memory_growth: () => undefined } })
      .exports as unknown as LibWebp;
    webp._initialize();
    return { image: decodeWith(webp, memory, bytes, size, alpha, background), memoryBytes: memory.buffer.byteLength };
  } catch (error) {
    if (error instanceof ImageError) throw error;
    // A trap (an out-of-bounds access or `unreachable` after a libwebp bug) lands here, never in the caller.
    throw undecodable("The WebP is corrupt or uses a feature the decoder does not support.", error);
  } finally {
    release(); // the instance and its memory go with this function's frame
  }
}

function decodeWith(
  webp: LibWebp,
  memory: WebAssembly.Memory,
  bytes: Uint8Array,
  size: { width: number; height: number },
  alpha: boolean,
  bg: readonly [number, number, number],
): Raster {
  const src = webp.malloc(bytes.length);
  if (src === 0) throw undecodable("The WebP is too large for the memory reserved for it.");
  new Uint8Array(memory.buffer, src, bytes.length).set(bytes);
  const { width, height } = size;
  const pixels = webp.webp_decode_scaled(src, bytes.length, width, height, alpha ? 1 : 0);
  if (pixels === 0) {
    const status = webp.webp_last_status();
    throw undecodable(`The WebP ${STATUS[status] ?? `could not be decoded (libwebp status ${status})`}.`);
  }
  const count = width * height;
  // Views taken after decoding: the memory may have grown (a new buffer) while libwebp ran.
  if (!alpha) return { width, height, channels: 3, data: new Uint8Array(memory.buffer, pixels, count * 3).slice() };
  const rgba = new Uint8Array(memory.buffer, pixels, count * 4);
  const out = new Uint8Array(count * 3);
  for (let i = 0, j = 0; i < count * 4; i += 4, j += 3) {
    const a = rgba[i + 3]!;
    out[j] = compositeSample(rgba[i]!, a, bg[0]);
    out[j + 1] = compositeSample(rgba[i + 1]!, a, bg[1]);
    out[j + 2] = compositeSample(rgba[i + 2]!, a, bg[2]);
  }
  return { width, height, channels: 3, data: out };
}
