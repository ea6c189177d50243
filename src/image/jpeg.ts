/**
 * JPEG decoding with libjpeg-turbo compiled to wasm (@cwasm/jpeg-turbo, MIT), driven through its TurboJPEG
 * exports. The package's own wrapper reads the .wasm with `fs` and compiles it from bytes, which Workers
 * forbid; wrangler bundles the imported .wasm as a precompiled module, which we instantiate here.
 *
 * Why these choices (measurements in docs/platform-notes.md, "Decoding images inside workerd"):
 * - Decoding at libjpeg's reduced DCT scale (n/8) just above the model's input means a 12 MP photo never
 *   exists at full size: ~4 MiB instead of ~100 MiB, and 4x faster.
 * - A fresh instance per decode (~0.1 ms): a wasm memory never shrinks, so one large decode would otherwise
 *   keep its memory for the isolate's life; and libjpeg's fatal errors unwind through a JS throw (there is no
 *   real longjmp here), which leaves the instance's stack and heap inconsistent. Dropping it after every
 *   decode means one bad image can never break the next.
 */
import jpegTurbo from "@cwasm/jpeg-turbo/jpeg-turbo.wasm";
import { cmykToRgb } from "./color";
import { trackDecoderMemory } from "./decoder-memory";
import { ImageError, undecodable } from "./errors";
import type { Raster } from "./raster";

interface TurboJpeg {
  memory: WebAssembly.Memory;
  malloc(bytes: number): number;
  free(pointer: number): void;
  tjInitDecompress(): number;
  tjDecompressHeader3(h: number, src: number, size: number, w: number, ht: number, sub: number, cs: number): number;
  tjDecompress2(h: number, src: number, size: number, dst: number, w: number, pitch: number, ht: number, pf: number, flags: number): number;
  tjDestroy(h: number): number;
}

// turbojpeg.h (libjpeg-turbo 2.0): colourspaces TJCS_*, pixel formats TJPF_*.
const TJCS_GRAY = 2;
const TJCS_CMYK = 3;
const TJCS_YCCK = 4;
const TJPF_RGB = 0;
const TJPF_GRAY = 6;
const TJPF_CMYK = 11;

/** libjpeg signals a fatal error by longjmp; the module imports it, and we make it a throw. */
class LibjpegFatalError extends Error {
  override name = "LibjpegFatalError";
}

function instantiate(): TurboJpeg {
  const unavailable = (name: string) => () => {
    throw new LibjpegFatalError(`libjpeg called ${name}, which a Worker does not provide`);
  };
  const imports = {
    // setjmp returning 0 means "continue normally"; the matching longjmp aborts the whole call instead.
    env: {
      setjmp: () => 0,
      longjmp: () => {
        throw new LibjpegFatalError("libjpeg reported a fatal error");
      },
    },
    wasi_snapshot_preview1: {
      environ_sizes_get: () => 0,
      environ_get: unavailable("environ_get"),
      proc_exit: unavailable("proc_exit"),
      fd_close: unavailable("fd_close"),
      fd_seek: unavailable("fd_seek"),
      fd_write: unavailable("fd_write"),
    },
  };
  return new WebAssembly.Instance(jpegTurbo, imports).exports as unknown as TurboJpeg;
}

export interface DecodedJpeg {
  image: Raster; // at the reduced scale, as stored (no EXIF orientation)
  scale: number; // the n of the n/8 DCT scale used
  memoryBytes: number; // the decoder's wasm memory at its largest, for tests and the benchmark
}

/**
 * The smallest n/8 scale (n = 1..8) whose shorter side is still >= `minShorterSide`; 8 (full size) when even
 * that is smaller. TurboJPEG rounds scaled sizes up (TJSCALED: ceil(size * n / 8)).
 */
export function dctScale(width: number, height: number, minShorterSide: number): number {
  for (let n = 1; n < 8; n++) {
    if (Math.min(scaled(width, n), scaled(height, n)) >= minShorterSide) return n;
  }
  return 8;
}

const scaled = (size: number, n: number): number => Math.ceil((size * n) / 8);

/**
 * Decodes at the smallest DCT scale that keeps the shorter side >= `minShorterSide`. Greyscale stays one
 * channel; YCbCr and RGB become RGB; CMYK and YCCK are converted to RGB as Pillow converts them.
 * Every failure is an ImageError (422).
 */
export function decodeJpeg(bytes: Uint8Array, minShorterSide: number): DecodedJpeg {
  const tj = instantiate();
  const release = trackDecoderMemory(tj.memory);
  try {
    return decodeWith(tj, bytes, minShorterSide);
  } catch (error) {
    if (error instanceof ImageError) throw error;
    throw undecodable("The JPEG is corrupt or uses a feature the decoder does not support.", error);
  } finally {
    release(); // the instance and its memory go with this function's frame
  }
}

function decodeWith(tj: TurboJpeg, bytes: Uint8Array, minShorterSide: number): DecodedJpeg {
  const src = allocate(tj, bytes.length);
  new Uint8Array(tj.memory.buffer, src, bytes.length).set(bytes);
  const handle = tj.tjInitDecompress();
  if (handle === 0) throw new LibjpegFatalError("tjInitDecompress failed");
  const info = allocate(tj, 16);
  if (tj.tjDecompressHeader3(handle, src, bytes.length, info, info + 4, info + 8, info + 12) !== 0) {
    throw undecodable("The JPEG header is corrupt.");
  }
  const [width, height, , colorspace] = new Int32Array(tj.memory.buffer, info, 4) as unknown as number[];
  const n = dctScale(width!, height!, minShorterSide);
  const w = scaled(width!, n);
  const h = scaled(height!, n);
  const cmyk = colorspace === TJCS_CMYK || colorspace === TJCS_YCCK; // TurboJPEG 2.0 cannot make RGB of these
  const [format, channels] = cmyk ? [TJPF_CMYK, 4] : colorspace === TJCS_GRAY ? [TJPF_GRAY, 1] : [TJPF_RGB, 3];
  const dst = allocate(tj, w * h * channels);
  // Non-zero without a throw means libjpeg only warned: in practice a truncated file or corrupt entropy-coded
  // data, which libjpeg fills with grey and returns. We refuse those (422) rather than classify a picture
  // that is partly invented; TurboJPEG 2.0 exports no way to tell the warnings apart.
  if (tj.tjDecompress2(handle, src, bytes.length, dst, w, 0, h, format, 0) !== 0) {
    throw undecodable("The JPEG is truncated or its image data is corrupt.");
  }
  const pixels = new Uint8Array(tj.memory.buffer, dst, w * h * channels).slice();
  const memoryBytes = tj.memory.buffer.byteLength;
  const image: Raster = cmyk ? cmykToRgb(pixels, w, h) : { width: w, height: h, channels: channels as 1 | 3, data: pixels };
  return { image, scale: n, memoryBytes };
}

function allocate(tj: TurboJpeg, bytes: number): number {
  const pointer = tj.malloc(bytes);
  if (pointer === 0) throw new LibjpegFatalError(`the decoder could not allocate ${bytes} bytes`);
  return pointer;
}
