/**
 * multipart/form-data (RFC 7578) parsed as the body arrives: each "image" file part is handed on as a stream of
 * its bytes while they arrive, so a consumer can decode image 1 before image 2 has been sent, and nothing ever
 * holds a whole part. The rules are multipart.ts's own (its header reading, limits and errors), so a body
 * parses to the same images and text fields (top_k, ood_threshold) either way.
 *
 * Memory: the chunk being read, the last (delimiter length - 1) bytes of the one before (a delimiter may be
 * split anywhere between two chunks), and, while a part's headers arrive, at most MAX_PART_HEADERS of them.
 * Never a part's size: content is handed on (images), cut at MAX_TOP_K_BYTES (top_k, ood_threshold) or dropped (any other
 * field) as it goes by.
 */
import {
  CRLF_CRLF,
  indexOf,
  startsWith,
  MAX_PART_HEADERS,
  MAX_TOP_K_BYTES,
  malformedMultipart,
  multipartDelimiter,
  partField,
  type TextField,
} from "./multipart";

/**
 * Most parts a form may have: a batch's images (8), top_k and ood_threshold, with room for the fields a browser form adds of
 * its own (a submit button, a CSRF token). Every part costs a header decode and its regexes however small it
 * is, so a body of 100,000 empty fields within the byte limit would otherwise buy far more work than one
 * image does; past this many the body is refused (400 malformed_multipart) before any more is read.
 */
export const MAX_PARTS = 64;

export interface MultipartImagesOptions {
  /** Most "image" parts; the next one is `tooMany(count)`'s error, thrown before its bytes are read. */
  maxImages: number;
  tooMany: (count: number) => Error;
  /**
   * Hears each top_k or ood_threshold field's value (its first MAX_TOP_K_BYTES bytes) once its part has ended;
   * the last one of a name counts.
   */
  onField?: (name: TextField, value: string) => void;
  /** Most parts of any kind (MAX_PARTS unless set). */
  maxParts?: number;
}

export interface MultipartImage {
  /** 0 for the body's first image, 1 for its second... */
  index: number;
  /**
   * The part's bytes as they arrive, up to the next boundary; iterable once. A body that ends inside the part
   * throws from it (400 malformed_multipart) instead of ending, so a truncated image is never taken as whole.
   * Read it, or not, before asking for the next image: what is left of it is then skipped.
   */
  bytes: AsyncIterable<Uint8Array>;
}

/** What the body held once the parser has reached its closing boundary: with no image, the caller decides. */
export interface MultipartSummary {
  images: number;
  parts: number;
}

const DASH = 45;
const SPACE = 32;
const TAB = 9;
const CR = 13;
const LF = 10;

/**
 * The body's "image" parts in order, each a stream of its bytes. Errors are multipart.ts's: no boundary, a
 * boundary without a line end, headers that do not end within MAX_PART_HEADERS, a body that ends inside a
 * part (400 malformed_multipart); an "image" that is not a file (400 missing_image); one image too many
 * (`tooMany`); and more than `maxParts` parts (400 malformed_multipart). The generator's return value counts
 * the images and parts; stopping it early stops reading `chunks` (their iterator's `return` is called).
 */
export async function* multipartImages(
  chunks: AsyncIterable<Uint8Array>,
  boundary: string,
  options: MultipartImagesOptions,
): AsyncGenerator<MultipartImage, MultipartSummary, undefined> {
  const maxParts = options.maxParts ?? MAX_PARTS;
  const scanner = new PartScanner(chunks[Symbol.asyncIterator](), multipartDelimiter(boundary));
  let images = 0;
  let parts = 0;
  try {
    await scanner.openBody();
    for (;;) {
      if (await scanner.closing()) return { images, parts };
      await scanner.lineEnd();
      if (++parts > maxParts) throw malformedMultipart(`it has more than ${maxParts} parts`);
      const field = partField(await scanner.headers(), images, options.maxImages, options.tooMany);
      if (field === "image") {
        const part = new PartBytes(scanner, images);
        images++;
        try {
          yield { index: part.index, bytes: part };
        } finally {
          part.abandon();
        }
        await scanner.skipPart();
      } else if (field) {
        const value = await scanner.collectPart(MAX_TOP_K_BYTES);
        options.onField?.(field, new TextDecoder().decode(value));
      } else {
        await scanner.skipPart();
      }
    }
  } finally {
    await scanner.close();
  }
}

/** One image part's bytes, readable once, and only until the parser moves on to the next part. */
class PartBytes implements AsyncIterable<Uint8Array> {
  private taken = false;
  private abandoned = false;
  private reading = false;

  constructor(
    private readonly scanner: PartScanner,
    readonly index: number,
  ) {}

  abandon(): void {
    if (this.reading) throw new Error(`multipart: image ${this.index + 1}'s bytes are being read while the parser moves on`);
    this.abandoned = true;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.taken) throw new Error(`multipart: image ${this.index + 1}'s bytes can be read only once`);
    this.taken = true;
    for (;;) {
      if (this.abandoned) throw new Error(`multipart: image ${this.index + 1}'s bytes were read after the next part was asked for`);
      this.reading = true;
      let piece: Uint8Array | null;
      try {
        piece = await this.scanner.content();
      } finally {
        this.reading = false;
      }
      if (piece === null) return;
      // The scanner's state is settled before each yield: a consumer that stops here leaves the rest to skipPart.
      if (piece.length > 0) yield piece;
    }
  }
}

/**
 * The body as a run of unread bytes (`head`: a view of the chunk being read, or a small join of a chunk's
 * tail and the next chunk) over the chunks still to come.
 */
class PartScanner {
  private head: Uint8Array = new Uint8Array(0);
  private ended = false;
  /** Inside a part's (or the preamble's) content, before its delimiter. */
  private inContent = false;
  private endedInside = "the body ends inside a part";

  constructor(
    private readonly chunks: AsyncIterator<Uint8Array>,
    private readonly delimiter: Uint8Array,
  ) {}

  /** The first boundary: at the body's start without the CRLF before it, or after a preamble, which is dropped. */
  async openBody(): Promise<void> {
    const dashBoundary = this.delimiter.subarray(2);
    if ((await this.want(dashBoundary.length)) && startsWith(this.head, dashBoundary, 0)) {
      this.head = this.head.subarray(dashBoundary.length);
      return;
    }
    this.inContent = true;
    this.endedInside = "no boundary was found";
    while ((await this.content()) !== null);
    this.endedInside = "the body ends inside a part";
  }

  /** After a boundary: "--" closes the body (what follows, the epilogue, is not read). */
  async closing(): Promise<boolean> {
    return (await this.want(2)) && this.head[0] === DASH && this.head[1] === DASH;
  }

  /** After a boundary that does not close the body: transport padding (spaces, tabs), then CRLF. */
  async lineEnd(): Promise<void> {
    for (;;) {
      if (!(await this.want(1))) throw malformedMultipart("a boundary is not followed by a line end");
      let at = 0;
      while (at < this.head.length && (this.head[at] === SPACE || this.head[at] === TAB)) at++;
      this.head = this.head.subarray(at);
      if (this.head.length > 0) break;
    }
    if (!(await this.want(2)) || this.head[0] !== CR || this.head[1] !== LF)
      throw malformedMultipart("a boundary is not followed by a line end");
    this.head = this.head.subarray(2);
  }

  /** A part's header bytes, up to the blank line that ends them, which must come within MAX_PART_HEADERS. */
  async headers(): Promise<Uint8Array> {
    let searched = 0;
    for (;;) {
      const window = this.head.subarray(0, MAX_PART_HEADERS);
      // A blank line split between chunks: search again from 3 bytes before where the last search ended.
      const end = indexOf(window, CRLF_CRLF, Math.max(0, searched - 3));
      if (end >= 0) {
        const headers = this.head.subarray(0, end);
        this.head = this.head.subarray(end + 4);
        this.inContent = true;
        return headers;
      }
      searched = window.length;
      if (window.length >= MAX_PART_HEADERS || !(await this.pull())) throw malformedMultipart("a part's headers do not end");
    }
  }

  /**
   * The next run of the current part's content, or null once its delimiter has been read (the delimiter is
   * consumed; the run before it may be empty). Only bytes that cannot begin a delimiter are handed out: the
   * last (delimiter length - 1) bytes of a chunk wait for the next one.
   */
  async content(): Promise<Uint8Array | null> {
    const d = this.delimiter;
    for (;;) {
      if (!this.inContent) return null;
      const h = this.head;
      const found = indexOf(h, d, 0);
      if (found >= 0) {
        this.head = h.subarray(found + d.length);
        this.inContent = false;
        return h.subarray(0, found);
      }
      const safe = h.length - (d.length - 1);
      if (safe > 0) {
        this.head = h.subarray(safe);
        return h.subarray(0, safe);
      }
      // `h` is shorter than the delimiter: it may be the delimiter's start. Join it to the next chunk.
      const chunk = await this.nextChunk();
      if (chunk === undefined) throw malformedMultipart(this.endedInside);
      if (h.length === 0 || chunk.length < d.length) {
        this.head = h.length === 0 ? chunk : concat(h, chunk);
        continue;
      }
      // A delimiter that starts in `h` ends within the chunk's first (length - 1) bytes: look there, so the
      // chunk itself is never copied.
      const seam = concat(h, chunk.subarray(0, d.length - 1));
      const across = indexOf(seam, d, 0);
      if (across >= 0) {
        this.head = chunk.subarray(across + d.length - h.length);
        this.inContent = false;
        return h.subarray(0, across);
      }
      this.head = chunk;
      if (h.length > 0) return h;
    }
  }

  /** Reads past the rest of the current part, holding none of it. */
  async skipPart(): Promise<void> {
    while ((await this.content()) !== null);
  }

  /** The current part's first `limit` bytes; the rest is read past. */
  async collectPart(limit: number): Promise<Uint8Array> {
    const kept = new Uint8Array(limit);
    let length = 0;
    for (let piece = await this.content(); piece !== null; piece = await this.content()) {
      const take = Math.min(piece.length, limit - length);
      kept.set(piece.subarray(0, take), length);
      length += take;
    }
    return kept.subarray(0, length);
  }

  /** Stops reading the body: its source is told, so an upload left unread is cancelled. */
  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      await this.chunks.return?.();
    }
  }

  /** At least `n` unread bytes (n small), or false at the body's end with fewer. */
  private async want(n: number): Promise<boolean> {
    while (this.head.length < n) if (!(await this.pull())) return false;
    return true;
  }

  /** Adds the next chunk to the unread bytes; false at the body's end. */
  private async pull(): Promise<boolean> {
    const chunk = await this.nextChunk();
    if (chunk === undefined) return false;
    this.head = this.head.length === 0 ? chunk : concat(this.head, chunk);
    return true;
  }

  private async nextChunk(): Promise<Uint8Array | undefined> {
    while (!this.ended) {
      const { done, value } = await this.chunks.next();
      if (done) {
        this.ended = true;
        return undefined;
      }
      if (value.length > 0) return value;
    }
    return undefined;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}
