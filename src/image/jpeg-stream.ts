/**
 * Drives src/image/jpeg/libjpeg-stream.wasm: a streaming, suspending JPEG decoder (libjpeg-turbo 2.1.5 from
 * Debian 12's source package, the libjpeg API behind scripts/jpeg/jpeg-shim.c, built by
 * scripts/build-jpeg-wasm.sh with Emscripten 3.1.6; src/image/jpeg/libjpeg-stream.wasm, 178685 bytes, sha256
 * 6794668770132ab24c2c258820749ef2d19a5ca15a70ccd815db1b7c7c8ad3d2). Bytes go in as they arrive (push), decoded
 * rows come out as soon as libjpeg has them, at the smallest DCT scale whose shorter side still covers the target (jpeg.ts's
 * dctScale), always as RGB. The file is never held whole: the module keeps a 128 KiB input window.
 *
 * Why (method and measurements: docs/jpeg-decoder.md):
 * - Limits are the module's own: at most `maxScans` scans (a progressive file of thousands of tiny scans is
 *   refused after `maxScans` passes, not ~90 s later), and at most `memoryCapBytes` for everything libjpeg
 *   and the shim allocate; the wasm memory itself gets a maximum just above that as a backstop.
 * - A progressive JPEG decoded below 8/8 keeps, per block, only the coefficients its component's scaled IDCT
 *   reads (DC only for a 1x1 IDCT, whose AC scans are skipped unread), plus a nonzero bit for each other one
 *   where refinement scans need it: 6.45 MiB instead of ~35 MiB at 12 MP 4:2:0 and 1/8, 12.6 MiB at 3/8.
 * - One instance and memory per image, dropped by dispose(): a wasm memory never shrinks, and a decoder that
 *   failed half-way must never serve the next image.
 * - Everything that is wrong with the image is an ImageError: over the memory cap 413 image_too_large (as an
 *   image whose header asks for too much), too many scans 422 too_many_scans, anything else 422
 *   undecodable_image. Like jpeg.ts, a truncated file or one libjpeg warns about is refused, not returned
 *   partly grey; rows already handed out before that must then be thrown away by the caller.
 */
import libjpegStream from "./jpeg/libjpeg-stream.wasm";
import { cmykToRgb } from "./color";
import { trackDecoderMemory } from "./decoder-memory";
import { ImageError, undecodable } from "./errors";
import { dctScale } from "./jpeg";

interface LibjpegStream {
  _initialize(): void;
  jls_create(budget: number, maxScans: number): number;
  jls_input_buffer(): number;
  jls_input_space(): number;
  jls_input_commit(bytes: number): number;
  jls_input_end(): void;
  jls_info(): number;
  jls_set_scale(scaleNum: number): number;
  jls_run(): number;
  jls_rows(): number;
  jls_row_count(): number;
  jls_first_row(): number;
  jls_error_code(): number;
  jls_message(): number;
  jls_peak_bytes(): number;
  jls_live_bytes(): number;
}

// scripts/jpeg/jpeg-shim.c: what jls_run answers, and jls_error_code's values.
const NEED_INPUT = 0;
const HEADER = 1;
const ROWS = 2;
const DONE = 3;
const E_TOO_MANY_SCANS = 2;
const E_MEMORY = 3;
const E_TRUNCATED = 4;
const E_STATE = 5;
const E_UNSUPPORTED = 6;

/** The scan limit: libjpeg's default progressive script writes 10 scans for colour, 6 for grey; see docs. */
export const JPEG_MAX_SCANS = 100;

const PAGE = 64 * 1024;
/** The module's declared initial memory (INITIAL_MEMORY in scripts/build-jpeg-wasm.sh): stack and data. */
export const JPEG_STREAM_WASM_INITIAL_BYTES = 4 * PAGE;

/** J_COLOR_SPACE (jpeglib.h) of the file, by name. */
const COLOR_SPACES = ["unknown", "grayscale", "rgb", "ycbcr", "cmyk", "ycck"] as const;
export type JpegColorSpace = (typeof COLOR_SPACES)[number];

export interface JpegStreamHeader {
  width: number;
  height: number;
  components: number;
  colorSpace: JpegColorSpace;
  progressive: boolean;
  /** The n of the n/8 DCT scale used, and the size the rows come out at. */
  scale: number;
  outWidth: number;
  outHeight: number;
  /** Whether the coefficient store keeps only what each component's IDCT reads (a multi-scan file with some
   * component's IDCT smaller than 8x8, i.e. scale < 8/8 or subsampled chroma below 4/8; see the shim). */
  compactStore: boolean;
}

/** Rows decoded since the last call: rows firstRow .. firstRow + rowCount - 1, RGB, `width` pixels each. */
export interface JpegRows {
  firstRow: number;
  rowCount: number;
  width: number;
  data: Uint8Array;
}

export interface JpegStreamOptions {
  maxScans?: number;
  /** Another build of the module (benchmarks in Node); the Worker uses the bundled one. */
  module?: WebAssembly.Module;
}

export class JpegStream {
  readonly #wasm: LibjpegStream;
  readonly #memory: WebAssembly.Memory;
  readonly #targetSide: number;
  #release: (() => void) | null;
  #header: JpegStreamHeader | null = null;
  #cmyk = false;
  #done = false;
  #failed = false;
  #rowsOut = 0;

  /**
   * A decoder that will output the smallest n/8 scale whose shorter side is >= `targetSide` (full size when
   * even that is smaller), holding at most `memoryCapBytes` of decoder memory.
   */
  static create(targetSide: number, memoryCapBytes: number, options: JpegStreamOptions = {}): JpegStream {
    return new JpegStream(targetSide, memoryCapBytes, options.maxScans ?? JPEG_MAX_SCANS, options.module ?? libjpegStream);
  }

  private constructor(targetSide: number, memoryCapBytes: number, maxScans: number, module: WebAssembly.Module) {
    if (!(memoryCapBytes > 0 && memoryCapBytes <= 0x7fff0000)) throw new RangeError(`memoryCapBytes out of range: ${memoryCapBytes}`);
    this.#targetSide = targetSide;
    // The module's own count is the cap; the memory's maximum only backs it up: malloc's overhead on top of
    // what libjpeg asked for (pools of >= 16 KiB and a few large arrays) stays well under 1/16 + 1 MiB.
    const maxBytes = JPEG_STREAM_WASM_INITIAL_BYTES + memoryCapBytes + Math.ceil(memoryCapBytes / 16) + 1024 * 1024;
    this.#memory = new WebAssembly.Memory({ initial: JPEG_STREAM_WASM_INITIAL_BYTES / PAGE, maximum: Math.ceil(maxBytes / PAGE) });
    this.#release = trackDecoderMemory(this.#memory);
    let temp = 0; // setjmp's scratch slot (Emscripten's SjLj lowering)
    const env = {
      memory: this.#memory,
      emscripten_notify_memory_growth: () => undefined,
      getTempRet0: () => temp,
      setTempRet0: (value: number) => {
        temp = value;
      },
    };
    try {
      this.#wasm = new WebAssembly.Instance(module, { env }).exports as unknown as LibjpegStream;
      this.#wasm._initialize();
      if (this.#wasm.jls_create(memoryCapBytes, maxScans) !== 0) throw this.#error();
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  /** The file's header and the output size, once push() has seen it; null before. */
  get header(): JpegStreamHeader | null {
    return this.#header;
  }

  /** True once every row is out and the end of the image was read. */
  get done(): boolean {
    return this.#done;
  }

  /** The most bytes libjpeg and the shim held at once (their own count, within memoryCapBytes). */
  get peakBytes(): number {
    return this.#release ? this.#wasm.jls_peak_bytes() : 0;
  }

  /** The module's wasm memory now (its largest: a wasm memory never shrinks). */
  get memoryBytes(): number {
    return this.#memory.buffer.byteLength;
  }

  /** [scans read, AC scans skipped unread] so far. */
  get scans(): { read: number; skipped: number } {
    const info = this.#info();
    return { read: info[11]!, skipped: info[12]! };
  }

  /** Appends `chunk`; returns the rows it made available (often none). Bytes after the image's end are ignored. */
  push(chunk: Uint8Array): JpegRows {
    const batches: Uint8Array[] = [];
    const first = this.#rowsOut;
    this.#guard(() => {
      for (let offset = 0; offset < chunk.length && !this.#done; ) {
        const space = this.#wasm.jls_input_space();
        if (space === 0) throw new Error("libjpeg-stream: the input window is full and the decoder did not say why");
        const n = Math.min(space, chunk.length - offset);
        new Uint8Array(this.#memory.buffer, this.#wasm.jls_input_buffer(), n).set(chunk.subarray(offset, offset + n));
        if (this.#wasm.jls_input_commit(n) !== 0) throw new Error("libjpeg-stream: jls_input_commit refused");
        offset += n;
        this.#drain(batches);
      }
    });
    return this.#rows(first, batches);
  }

  /** No more bytes: returns the last rows, or throws (422) when the image is not complete. */
  finish(): JpegRows {
    const batches: Uint8Array[] = [];
    const first = this.#rowsOut;
    this.#guard(() => {
      if (this.#done) return;
      this.#wasm.jls_input_end();
      this.#drain(batches);
      if (!this.#done) throw new Error("libjpeg-stream: input ended without an error or the end of the image");
    });
    return this.#rows(first, batches);
  }

  /** Drops the instance and its memory; the stream cannot be used afterwards. Safe to call twice. */
  dispose(): void {
    this.#release?.();
    this.#release = null;
  }

  #guard(work: () => void): void {
    if (!this.#release) throw new Error("libjpeg-stream: used after dispose()");
    if (this.#failed) throw undecodable("The JPEG decoder already failed on this image.");
    try {
      work();
    } catch (error) {
      this.#failed = true;
      if (error instanceof ImageError) throw error;
      if (error instanceof WebAssembly.RuntimeError) {
        // A trap (out-of-bounds access, `unreachable`) after a bug in the decoder: still the image's fault here.
        throw undecodable("The JPEG is corrupt or uses a feature the decoder does not support.", error);
      }
      throw error;
    }
  }

  #drain(batches: Uint8Array[]): void {
    for (;;) {
      const status = this.#wasm.jls_run();
      if (status === NEED_INPUT) return;
      if (status === DONE) {
        this.#done = true;
        return;
      }
      if (status === HEADER) this.#start();
      else if (status === ROWS) batches.push(this.#take());
      else throw this.#error();
    }
  }

  #start(): void {
    const info = this.#info();
    const [width, height] = [info[0]!, info[1]!];
    const scale = dctScale(width, height, this.#targetSide);
    if (this.#wasm.jls_set_scale(scale) !== 0) throw this.#error();
    const after = this.#info();
    this.#cmyk = after[9] === 4;
    this.#header = {
      width,
      height,
      components: after[2]!,
      colorSpace: COLOR_SPACES[after[3]!] ?? "unknown",
      progressive: after[4] === 1,
      scale,
      outWidth: after[7]!,
      outHeight: after[8]!,
      compactStore: after[10] === 1,
    };
  }

  /** The rows jls_run just put in the module's row buffer, copied out as RGB. */
  #take(): Uint8Array {
    const { outWidth } = this.#header!;
    const count = this.#wasm.jls_row_count();
    if (this.#wasm.jls_first_row() !== this.#rowsOut) throw new Error("libjpeg-stream: rows out of order");
    this.#rowsOut += count;
    const channels = this.#cmyk ? 4 : 3;
    // A view taken now: the memory may have grown (a new buffer) while libjpeg ran.
    const samples = new Uint8Array(this.#memory.buffer, this.#wasm.jls_rows(), count * outWidth * channels);
    return this.#cmyk ? cmykToRgb(samples, outWidth, count).data : samples.slice();
  }

  #rows(firstRow: number, batches: Uint8Array[]): JpegRows {
    const width = this.#header?.outWidth ?? 0;
    const rowCount = this.#rowsOut - firstRow;
    if (batches.length === 1) return { firstRow, rowCount, width, data: batches[0]! };
    const data = new Uint8Array(rowCount * width * 3);
    let at = 0;
    for (const batch of batches) {
      data.set(batch, at);
      at += batch.length;
    }
    return { firstRow, rowCount, width, data };
  }

  #info(): Int32Array {
    return new Int32Array(this.#memory.buffer, this.#wasm.jls_info(), 16);
  }

  #error(): Error {
    const code = this.#wasm.jls_error_code();
    const message = this.#message();
    switch (code) {
      case E_MEMORY:
        return new ImageError("image_too_large", `Decoding the JPEG would need more memory than an image may use (libjpeg: ${message}).`);
      case E_TOO_MANY_SCANS:
        return new ImageError("too_many_scans", `The progressive JPEG has ${message}; the limit is what real encoders write.`);
      case E_TRUNCATED:
        return undecodable("The JPEG is truncated or its image data is corrupt.");
      case E_UNSUPPORTED:
        return undecodable(`The JPEG uses a feature the decoder does not support (${message}).`);
      case E_STATE:
        return new Error(`libjpeg-stream: ${message}`);
      default:
        return undecodable(`The JPEG is corrupt (libjpeg: ${message}).`);
    }
  }

  #message(): string {
    const bytes = new Uint8Array(this.#memory.buffer, this.#wasm.jls_message(), 256);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(bytes.subarray(0, end < 0 ? bytes.length : end));
  }
}
