/**
 * A streaming decoder for non-interlaced PNG (https://www.w3.org/TR/png-3/): bytes go in as they arrive, split
 * anywhere, and RGB (or grey) rows come out one at a time, so what it holds does not grow with the image's
 * height or the file's size: two filtered rows, one converted row, one piece of compressed data on its way to
 * the inflater and the inflater's read buffer (pngStreamBytes says how much, from the header).
 *
 * It decodes exactly as src/image/png.ts does (the same unfilter and colour conversion, so the same pixels as
 * Pillow) and refuses what src/image/png-chunks.ts refuses, with the same words (the same PngChunkOrder).
 * Interlaced PNGs are refused with an InterlacedPngError, which a caller can catch to fall back to decodePng.
 *
 * The inflater is the runtime's DecompressionStream("deflate") (zlib format, PNG's IDAT stream). workerd's
 * implementation inflates everything it is given the moment it is written, with no backpressure
 * (workerd src/workerd/api/streams/compression.c++, writeInternal: "This does not yet implement any
 * backpressure"), and hands its output to a pending read before the write resolves (measured here). So the
 * decoder keeps one BYOB read of INFLATE_READ_BYTES always pending and writes at most FEED_BYTES of compressed
 * data at a time: deflate expands a byte into at most 1032 (a 258-byte match in two 1-bit codes), so one
 * piece's whole output fits the pending read and nothing piles up inside the inflater. Output is counted
 * against the header's exact size, so a bomb is refused after at most that size plus one read buffer.
 */
import { ImageError, undecodable } from "./errors";
import { rowWriter, unfilter } from "./png";
import { badChecksum, chunkOverrun, crc32, PngChunkOrder, SAMPLES } from "./png-chunks";

export { MAX_IDAT_CHUNKS, MAX_OTHER_CHUNKS } from "./png-chunks";

type Rgb = readonly [number, number, number];

/** Compressed bytes written to the inflater at a time: 1032 x this (deflate's largest expansion) + slack fits one read. */
export const FEED_BYTES = 1000;
/** The inflater's read buffer; every piece's output fits it (see above), so its output never waits inside. */
export const INFLATE_READ_BYTES = 1024 * 1024;
/**
 * zlib's own state, in the runtime's memory rather than ours: the 32 KiB window, ~7 KiB of inflate state and
 * workerd's output staging. Not measurable from inside the isolate; an estimate with room.
 */
export const INFLATER_STATE_BYTES = 64 * 1024;

/**
 * Widest PNG accepted: rows are held whole, so the width alone decides the decoder's memory. 16384 covers
 * 8K screenshots (7680) twice over; a 16-bit RGBA row is then 128 KiB.
 */
export const MAX_STREAM_WIDTH = 16_384;

export interface PngStreamHeader {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  /** Samples per emitted pixel: 1 for grey PNGs (colour type 0), 3 otherwise, as decodePng's raster. */
  channels: 1 | 3;
}

export interface PngStreamOptions {
  /** Opaque colour that alpha is composited over (the manifest's preprocess.background). */
  background: Rgb;
  /** Called once the header is read, before any row; throwing (e.g. an ImageError for too many pixels) stops the decode. */
  onHeader?: (header: PngStreamHeader) => void;
  /**
   * Called for every row, top to bottom, with width * channels 8-bit samples. The buffer is reused for the
   * next row: copy what you keep. Rows may have been emitted before a later error: the decode's outcome is
   * push's and finish's.
   */
  onRow: (row: Uint8Array, y: number) => void;
}

export interface PngStreamResult extends PngStreamHeader {
  /** Bytes the inflater produced: the header's exact size. */
  inflatedBytes: number;
  /** The most this decoder held at once (pngStreamBytes' terms as allocated; rows included). */
  peakRetainedBytes: number;
}

export interface PngStream {
  /** Hands the next bytes of the file over; await it before the next push. Rejects with an ImageError. */
  push(chunk: Uint8Array): Promise<void>;
  /** The file has ended: checks it was whole and every row arrived. */
  finish(): Promise<PngStreamResult>;
  /** Stops decoding (the caller gave up); later pushes reject. */
  cancel(reason?: unknown): void;
  /** What the decoder holds now, and its peak: see pngStreamBytes. */
  readonly retainedBytes: number;
  readonly peakRetainedBytes: number;
  /** Bytes inflated so far. */
  readonly inflatedBytes: number;
}

/** The refusal of an interlaced PNG: the streaming decoder reads only non-interlaced ones; decodePng reads both. */
export class InterlacedPngError extends ImageError {
  override name = "InterlacedPngError";
  readonly interlaced = true;
  constructor() {
    super("undecodable_image", "The PNG is interlaced; the streaming decoder reads only non-interlaced PNGs.");
  }
}

/**
 * The most a stream decoding a PNG with this header holds (what retainedBytes reports at its peak): the
 * inflater's read buffer and state, one piece of compressed data, two filtered rows, one row of 8-bit
 * samples (depths other than 8) and the converted row. Independent of the height and of the file's size.
 */
export function pngStreamBytes(width: number, depth: number, colorType: number): number {
  const spp = SAMPLES[colorType] ?? 4;
  const rowBytes = Math.ceil((width * spp * depth) / 8);
  const channels = colorType === 0 ? 1 : 3;
  return INFLATE_READ_BYTES + INFLATER_STATE_BYTES + FEED_BYTES + 2 * (1 + rowBytes) + width * spp + width * channels + SMALL_BYTES;
}

/** The chunk header, CRC and kept chunk data (IHDR 13, PLTE 768, tRNS 256 bytes at most). */
const SMALL_BYTES = 12 + 768;
const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Bytes of a chunk's data worth keeping: what the decoder reads of it. */
const KEEP: Record<string, number> = { IHDR: 13, PLTE: 768, tRNS: 256 };

export function createPngStream(options: PngStreamOptions): PngStream {
  return new StreamingPngDecoder(options);
}

type State = "signature" | "chunkHeader" | "data" | "crc" | "done";

class StreamingPngDecoder implements PngStream {
  private state: State = "signature";
  private readonly order = new PngChunkOrder();
  // Small fields of the chunk in progress: the signature, the 8-byte header, the 4-byte CRC.
  private readonly small = new Uint8Array(8);
  private smallFill = 0;
  private chunkType = "";
  private chunkLength = 0;
  private chunkLeft = 0; // data bytes still to come
  private chunkCrc = 0; // running CRC of type + data (not for IDAT)
  private kept = new Uint8Array(0); // the kept prefix of a PLTE, tRNS or IHDR
  private keptFill = 0;

  // Decoding, from the first IDAT.
  private header: PngStreamHeader | undefined;
  private inflater: Inflater | undefined;
  private skipImage = false; // a palette image without a valid palette: refused at the end
  private line = new Uint8Array(0); // filter-type byte + the row being filled
  private prev = new Uint8Array(0); // the previous unfiltered row
  private fill = 0;
  private bpp = 1;
  private y = 0;
  private expected = 0;
  private writeRow: ((row: Uint8Array, y: number, x0: number, dx: number, w: number) => void) | undefined;
  private rowOut = new Uint8Array(0);
  private rowsBytes = 0; // line, prev, samples and rowOut

  private busy = false;
  private failure: unknown;
  private peak = 0;

  constructor(private readonly options: PngStreamOptions) {}

  get retainedBytes(): number {
    const inflater = this.inflater ? INFLATE_READ_BYTES + INFLATER_STATE_BYTES + FEED_BYTES : 0;
    return inflater + this.rowsBytes + this.small.length + 4 + this.kept.length;
  }

  get peakRetainedBytes(): number {
    return Math.max(this.peak, this.retainedBytes);
  }

  get inflatedBytes(): number {
    return this.inflater?.received ?? 0;
  }

  async push(chunk: Uint8Array): Promise<void> {
    await this.run(() => this.parse(chunk));
  }

  async finish(): Promise<PngStreamResult> {
    await this.run(() => this.end());
    const header = this.header!;
    return { ...header, inflatedBytes: this.inflatedBytes, peakRetainedBytes: this.peakRetainedBytes };
  }

  cancel(reason?: unknown): void {
    this.failure ??= reason ?? undecodable("The PNG decode was cancelled.");
    this.inflater?.cancel();
  }

  /** One push or finish at a time; the first failure sticks, and stops the inflater. */
  private async run(step: () => Promise<void>): Promise<void> {
    if (this.busy) throw new Error("PngStream: await each push before the next");
    if (this.failure !== undefined) throw this.failure;
    this.busy = true;
    try {
      await step();
    } catch (error) {
      this.failure ??= error instanceof ImageError ? error : undecodable("The PNG could not be decoded.", error);
      this.inflater?.cancel();
      throw this.failure;
    } finally {
      this.peak = Math.max(this.peak, this.retainedBytes);
      this.busy = false;
    }
  }

  /** Walks `bytes` through the chunk state machine; IDAT data goes to the inflater as it passes. */
  private async parse(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      switch (this.state) {
        case "signature": {
          at = this.gather(bytes, at, 8);
          if (this.smallFill < 8) return;
          if (!SIGNATURE.every((b, i) => this.small[i] === b)) throw undecodable("The PNG signature is corrupt.");
          this.smallFill = 0;
          this.state = "chunkHeader";
          break;
        }
        case "chunkHeader": {
          at = this.gather(bytes, at, 8);
          if (this.smallFill < 8) return;
          this.smallFill = 0;
          await this.beginChunk();
          break;
        }
        case "data": {
          const n = Math.min(this.chunkLeft, bytes.length - at);
          const part = bytes.subarray(at, at + n);
          at += n;
          this.chunkLeft -= n;
          if (this.chunkType === "IDAT") {
            if (!this.skipImage) await this.inflater!.feed(part);
          } else {
            this.chunkCrc = crc32(part, this.chunkCrc);
            const keep = Math.min(part.length, this.kept.length - this.keptFill);
            this.kept.set(part.subarray(0, keep), this.keptFill);
            this.keptFill += keep;
          }
          if (this.chunkLeft === 0) this.state = "crc";
          break;
        }
        case "crc": {
          at = this.gather(bytes, at, 4);
          if (this.smallFill < 4) return;
          this.smallFill = 0;
          this.state = "chunkHeader";
          await this.endChunk();
          break;
        }
        case "done":
          return; // nothing after IEND is read
      }
      this.peak = Math.max(this.peak, this.retainedBytes);
    }
  }

  /** Copies up to `need` bytes into `small`; returns the new position in `bytes`. */
  private gather(bytes: Uint8Array, at: number, need: number): number {
    const n = Math.min(need - this.smallFill, bytes.length - at);
    this.small.set(bytes.subarray(at, at + n), this.smallFill);
    this.smallFill += n;
    return at + n;
  }

  private async beginChunk(): Promise<void> {
    const s = this.small;
    const length = ((s[0]! << 24) | (s[1]! << 16) | (s[2]! << 8) | s[3]!) >>> 0;
    const type = String.fromCharCode(s[4]!, s[5]!, s[6]!, s[7]!);
    if (length > 0x7fffffff) throw chunkOverrun(type, length);
    this.chunkType = type;
    this.chunkLength = length;
    this.chunkLeft = length;
    this.state = length > 0 ? "data" : "crc";
    if (type === "IDAT") {
      // IDAT's place needs no data and it carries no CRC check (zlib checks its data): check it now and stream.
      this.order.accept(type, new Uint8Array(0), length);
      if (this.order.idatChunks === 1) this.startImage();
      return;
    }
    this.chunkCrc = crc32(s.subarray(4, 8));
    this.kept = new Uint8Array(Math.min(length, KEEP[type] ?? 0));
    this.keptFill = 0;
  }

  private async endChunk(): Promise<void> {
    const type = this.chunkType;
    if (type === "IDAT") return;
    const s = this.small;
    const stored = ((s[0]! << 24) | (s[1]! << 16) | (s[2]! << 8) | s[3]!) >>> 0;
    if (this.chunkCrc !== stored) throw badChecksum(type);
    const kind = this.order.accept(type, this.kept, this.chunkLength);
    this.kept = new Uint8Array(0);
    if (kind === "header") this.readHeader();
    else if (kind === "end") this.state = "done";
  }

  private readHeader(): void {
    const info = this.order.header!;
    if (info.interlaced) throw new InterlacedPngError();
    const { width, height, depth, colorType } = info;
    if (width === 0 || height === 0) throw undecodable("The PNG header says the image is empty.");
    if (width > MAX_STREAM_WIDTH) {
      throw new ImageError("image_too_large", `The PNG is ${width} pixels wide; at most ${MAX_STREAM_WIDTH} are accepted.`);
    }
    this.header = { width, height, depth, colorType, channels: colorType === 0 ? 1 : 3 };
    this.options.onHeader?.({ ...this.header });
  }

  /**
   * At the first IDAT: the palette is known (PLTE and tRNS come before), so rows can be converted. A palette
   * image without a valid palette is refused at the end, as readPngChunks refuses it after every chunk (a
   * later chunk's error wins, as there); its image data is skipped until then, and nothing is inflated.
   */
  private startImage(): void {
    try {
      this.order.checkPalette();
    } catch {
      this.skipImage = true;
      return;
    }
    const info = this.order.header!;
    const header = this.header!;
    const spp = SAMPLES[info.colorType]!;
    const bitsPerPixel = spp * info.depth;
    const rowBytes = Math.ceil((info.width * bitsPerPixel) / 8);
    this.bpp = Math.max(1, bitsPerPixel >> 3);
    this.line = new Uint8Array(1 + rowBytes);
    this.prev = new Uint8Array(1 + rowBytes);
    this.rowOut = new Uint8Array(info.width * header.channels);
    this.writeRow = rowWriter(info, this.rowOut, header.channels, this.options.background);
    this.rowsBytes = 2 * (1 + rowBytes) + info.width * spp + this.rowOut.length;
    this.expected = info.height * (1 + rowBytes);
    this.inflater = new Inflater(this.expected, (piece) => this.consume(piece));
  }

  /** Inflated bytes -> rows: unfilter each completed row against the previous and emit it converted. */
  private consume(piece: Uint8Array): void {
    const header = this.header!;
    for (let at = 0; at < piece.length; ) {
      const n = Math.min(this.line.length - this.fill, piece.length - at);
      this.line.set(piece.subarray(at, at + n), this.fill);
      this.fill += n;
      at += n;
      if (this.fill < this.line.length) break;
      unfilter(this.line, this.prev, this.bpp);
      this.writeRow!(this.line.subarray(1), 0, 0, 1, header.width);
      this.options.onRow(this.rowOut, this.y++);
      [this.line, this.prev] = [this.prev, this.line];
      this.fill = 0;
    }
  }

  /** The end of the file: the same truncation refusals as readPngChunks, then every row must have arrived. */
  private async end(): Promise<void> {
    if (this.state === "signature") throw undecodable("The PNG header is truncated.");
    if (this.state !== "done") {
      // readPngChunks: fewer than 12 bytes left at a chunk's start is a truncated header, else a length past the end.
      const started = this.state === "chunkHeader" ? this.smallFill : 8 + (this.chunkLength - this.chunkLeft) + this.smallFill;
      if (this.state === "chunkHeader" && started === 0) {
        // the file ends between chunks, without IEND, which readPngChunks accepts too
      } else if (started < 12) throw undecodable("The PNG is truncated inside a chunk header.");
      else throw chunkOverrun(this.chunkType, this.chunkLength);
    }
    this.order.finish();
    await this.inflater!.close();
    if (this.y !== this.header!.height) throw undecodable("The PNG is truncated: its image data ends early.");
  }
}

/**
 * The runtime's zlib inflater, fed FEED_BYTES at a time with one BYOB read always pending (see the top of the
 * file); its output goes to `consume` as it comes, counted against `expected`.
 */
class Inflater {
  received = 0;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly reader: ReadableStreamBYOBReader;
  private readonly pumping: Promise<void>;
  private readonly piece = new Uint8Array(FEED_BYTES);
  private pieceFill = 0;
  private failure: unknown;
  private cancelled = false;

  constructor(
    private readonly expected: number,
    private readonly consume: (piece: Uint8Array) => void,
  ) {
    const stream = new DecompressionStream("deflate");
    this.writer = stream.writable.getWriter();
    this.reader = stream.readable.getReader({ mode: "byob" });
    this.pumping = this.pump().catch((error) => {
      this.failure ??= error instanceof ImageError ? error : undecodable("The PNG's compressed image data is corrupt or truncated.", error);
      this.cancel();
    });
  }

  /** Reads the inflater's output as it comes; the read is pending whenever the inflater holds nothing. */
  private async pump(): Promise<void> {
    let buffer = new ArrayBuffer(INFLATE_READ_BYTES);
    for (;;) {
      const { done, value } = await this.reader.read(new Uint8Array(buffer));
      if (done || !value) return;
      this.received += value.length;
      if (this.received > this.expected) throw undecodable("The PNG holds more image data than its header says.");
      this.consume(value);
      buffer = value.buffer as ArrayBuffer;
    }
  }

  /** Gathers compressed bytes and writes them a full piece at a time. */
  async feed(bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(FEED_BYTES - this.pieceFill, bytes.length - at);
      this.piece.set(bytes.subarray(at, at + n), this.pieceFill);
      this.pieceFill += n;
      at += n;
      if (this.pieceFill === FEED_BYTES) await this.writePiece();
    }
  }

  private async writePiece(): Promise<void> {
    this.check();
    if (this.pieceFill === 0) return;
    // A copy: the stream may take ownership of what it is given, and the piece is reused.
    const piece = this.piece.slice(0, this.pieceFill);
    this.pieceFill = 0;
    try {
      await this.writer.write(piece);
    } catch (error) {
      this.check(); // the reader's failure explains a failed write best
      throw undecodable("The PNG's compressed image data is corrupt or truncated.", error);
    }
    this.check();
  }

  /** The last piece, then the end of the zlib stream; every byte must have come out. */
  async close(): Promise<void> {
    await this.writePiece();
    try {
      await this.writer.close();
    } catch (error) {
      await this.pumping;
      this.check();
      throw undecodable("The PNG's compressed image data is corrupt or truncated.", error);
    }
    await this.pumping;
    this.check();
    if (this.received < this.expected) throw undecodable("The PNG is truncated: its image data ends early.");
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.reader.cancel().catch(() => undefined);
    this.writer.abort().catch(() => undefined);
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
