/**
 * One image from a byte stream (a request body as it arrives) to the model's input tensor.
 *
 * The first bytes decide how: a JPEG (baseline or progressive) or a non-interlaced PNG streams, its rows going
 * from the decoder into the row-by-row resize while the body still arrives, so neither the file nor a raster is
 * ever held and the answer is ready about one forward pass after the last byte. Any other image (WebP, an
 * interlaced PNG) is gathered whole, within `bufferedBytes`, and decoded by prepareImage.
 *
 * Memory is the caller's to account: `commit` hears of each growth of a gathered image's buffer,
 * `reserveWorking` of the decode's working memory, computed from the header before any decoding.
 */
import type { InputShape, Preprocess } from "../package/manifest";
import { BODY_SLACK_BYTES, MAX_STREAMED_WORKING_BYTES, REQUEST_MEMORY_BYTES } from "../config";
import {
  ImageError,
  jpegRowsToTensor,
  type PreparedImage,
  planHeader,
  planImage,
  planJpegStream,
  pngRowsToTensor,
  prepareImage,
  sniffImage,
} from "../image";
import { ByteSink } from "./byte-sink";

export interface StreamHooks {
  /** Before a gathered image's buffer grows to `bytes`; throws to refuse (the ledger is full). */
  commit(bytes: number): void;
  /** Once the header is known, before decoding: the decode's working memory. May wait; throws to refuse. */
  reserveWorking(bytes: number): Promise<void>;
}

/** The caller's answer to a stream that ended before its first byte. */
export type EmptyStream = () => Error;

/** Bytes that hold a PNG's signature and its IHDR chunk: enough to plan a streamed decode. */
const PNG_HEAD_BYTES = 33;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export async function imageStreamToTensor(
  chunks: AsyncIterable<Uint8Array>,
  preprocess: Preprocess,
  input: InputShape,
  hooks: StreamHooks,
  bufferedBytes: number,
  empty: EmptyStream,
): Promise<PreparedImage> {
  const iterator = chunks[Symbol.asyncIterator]();
  try {
    const head: Uint8Array[] = [];
    let headBytes = 0;
    while (headBytes < PNG_HEAD_BYTES) {
      const next = await iterator.next();
      if (next.done) break;
      head.push(next.value);
      headBytes += next.value.length;
    }
    if (headBytes === 0) throw empty();
    const first = concat(head);
    const png = pngHead(first);
    // Not JPEG, PNG or WebP by its first bytes: refused now (415, naming what it is if known), not after the rest arrives.
    if (!png) refuseUnknown(first);
    if (first[0] === 0xff && first[1] === 0xd8 && first[2] === 0xff) {
      return await jpegRowsToTensor(replay(head, iterator), preprocess, input, {
        plan: (header) => planJpegStream(header, preprocess, input, MAX_STREAMED_WORKING_BYTES),
        reserve: hooks.reserveWorking,
        commit: hooks.commit,
      });
    }
    if (png) {
      const plan = planHeader(png, preprocess, input);
      await hooks.reserveWorking(plan.workingBytes);
      return await pngRowsToTensor(replay(head, iterator), preprocess, input);
    }
    const sink = new ByteSink(bufferedBytes, 0, () => gatheredTooLarge(bufferedBytes), hooks.commit);
    for await (const chunk of replay(head, iterator)) sink.append(chunk);
    const bytes = sink.view();
    // One image's share of a request, less the body it holds: a raw body holds nothing else.
    const plan = planImage(bytes, preprocess, input, REQUEST_MEMORY_BYTES - BODY_SLACK_BYTES - bytes.buffer.byteLength);
    await hooks.reserveWorking(plan.workingBytes);
    return await prepareImage(bytes, preprocess, input, plan);
  } catch (error) {
    // Let the body go (its reader's lock), so the caller can read the rest away before answering.
    await iterator.return?.(undefined);
    throw error;
  }
}

/** The header of a non-interlaced PNG from its first bytes, or undefined (not a PNG, interlaced, or malformed: decoded whole). */
function pngHead(bytes: Uint8Array) {
  if (bytes.length < PNG_HEAD_BYTES || !PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(8) !== 13 || String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR" || bytes[28] !== 0) return undefined;
  const [width, height] = [view.getUint32(16), view.getUint32(20)];
  if (width === 0 || height === 0) return undefined;
  // The stream decoder checks the rest of IHDR (depth and colour type, CRC) as it reads it.
  return {
    type: "png" as const,
    width,
    height,
    fileBytes: 0,
    progressive: false as const,
    depth: bytes[24]!,
    colorType: bytes[25]!,
    interlaced: false,
  };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

/** Throws sniffImage's 415 when the first bytes are no JPEG, PNG or WebP signature. */
function refuseUnknown(first: Uint8Array): void {
  const jpeg = first[0] === 0xff && first[1] === 0xd8 && first[2] === 0xff;
  const png = PNG_SIGNATURE.every((b, i) => first[i] === b);
  const riff = first.length >= 4 && String.fromCharCode(...first.subarray(0, 4)) === "RIFF";
  if (!jpeg && !png && !riff && first.length >= 3) sniffImage(first);
}

/** The bytes read ahead, then the rest of the stream; a consumer that stops early stops the stream too. */
async function* replay(head: Uint8Array[], rest: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  let done = false;
  try {
    yield* head;
    for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
    done = true;
  } finally {
    if (!done) await rest.return?.(undefined);
  }
}

function gatheredTooLarge(limit: number): ImageError {
  return new ImageError(
    "image_too_large",
    `The image is over ${(limit / 1048576).toFixed(0)} MiB. WebP files and interlaced PNGs are held whole while they decode, so they have this lower limit; JPEGs and non-interlaced PNGs stream and may be larger.`,
  );
}
