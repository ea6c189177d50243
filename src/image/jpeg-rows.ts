/**
 * A JPEG from a byte stream (a request body as it arrives) to the model's input, with neither the file nor a
 * raster held: the header segments are gathered first (up to the first scan, where the size, the sampling and
 * the EXIF orientation are), the decode is planned and its memory reserved from them, then the streaming
 * decoder (jpeg-stream.ts, libjpeg-turbo with a suspending source) takes the bytes as they come and its rows go
 * straight into the row-by-row preprocess, turned for the EXIF orientation at the end.
 */
import type { InputShape, Preprocess } from "../package/manifest";
import { jpegStreamCost } from "./cost";
import { ImageError, undecodable } from "./errors";
import { JpegStream } from "./jpeg-stream";
import { SOS } from "./jpeg-markers";
import { readJpegOrientation, swapsAxes } from "./orientation";
import { createRowPreprocessor, type RowPreprocessor } from "./row-preprocess";
import type { JpegHeader } from "./sniff";
import { sniffImage } from "./sniff";

/**
 * Most header bytes before the first scan. EXIF (with its thumbnail) is at most 64 KiB, XMP and an ICC profile
 * can take several APP segments; 1 MiB is past any camera's or editor's and bounds what a header can hold.
 */
export const MAX_JPEG_HEADER_BYTES = 1024 * 1024;

export interface JpegStreamPlan {
  header: JpegHeader;
  /** The shorter side to decode to at least. */
  decodeSide: number;
  workingBytes: number;
}

/**
 * `plan(header)` checks limits and chooses the decode side (throwing to refuse), `reserve(bytes)` holds the
 * working memory before decoding starts, `commit(bytes)` accounts the header bytes gathered.
 */
export async function jpegRowsToTensor(
  chunks: AsyncIterable<Uint8Array>,
  preprocess: Preprocess,
  input: InputShape,
  hooks: {
    plan: (header: JpegHeader) => JpegStreamPlan;
    reserve: (bytes: number) => Promise<void>;
    commit: (bytes: number) => void;
  },
) {
  const start = performance.now();
  const iterator = chunks[Symbol.asyncIterator]();
  // The header, up to and including the first scan's header.
  let gathered = new Uint8Array(0);
  let end: number | undefined;
  while (end === undefined) {
    const next = await iterator.next();
    if (next.done) throw undecodable("The JPEG ends before its first scan.");
    if (gathered.length + next.value.length > MAX_JPEG_HEADER_BYTES + 64 * 1024) {
      throw new ImageError("undecodable_image", `The JPEG's header segments are over ${MAX_JPEG_HEADER_BYTES / 1048576} MiB.`);
    }
    const grown = new Uint8Array(gathered.length + next.value.length);
    grown.set(gathered);
    grown.set(next.value, gathered.length);
    gathered = grown;
    hooks.commit(gathered.length);
    end = firstScanEnd(gathered);
  }
  const head = gathered.subarray(0, end);
  const header = sniffImage(head) as JpegHeader;
  const orientation = readJpegOrientation(head);
  const plan = hooks.plan(header);
  await hooks.reserve(plan.workingBytes);

  const decoder = JpegStream.create(plan.decodeSide, jpegStreamCost(plan.header, preprocess, input, plan.decodeSide).decoderBytes);
  let rows: RowPreprocessor | undefined;
  const take = (batch: ReturnType<JpegStream["push"]>) => {
    if (batch.rowCount === 0) return;
    const { outWidth, outHeight } = decoder.header!;
    rows ??= createRowPreprocessor({ width: outWidth, height: outHeight, channels: 3 }, preprocess, input, orientation);
    const n = batch.width * 3;
    for (let r = 0; r < batch.rowCount; r++) rows.push(batch.data.subarray(r * n, (r + 1) * n));
  };
  try {
    take(decoder.push(gathered));
    hooks.commit(0); // the gathered header is the decoder's now
    gathered = new Uint8Array(0);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      // After the image's end the decoder ignores bytes; the stream is still read to its end, where a JSON
      // body's closing members (top_k) come.
      if (!decoder.done) take(decoder.push(next.value));
    }
    take(decoder.finish());
    if (!rows) throw undecodable("The JPEG has no rows.");
    const decoded = performance.now();
    const tensor = rows.finish();
    const [width, height] = swapsAxes(orientation) ? [header.height, header.width] : [header.width, header.height];
    return {
      tensor,
      decodeMs: decoded - start,
      preprocessMs: performance.now() - decoded,
      source: { type: "jpeg" as const, width, height },
    };
  } finally {
    decoder.dispose();
  }
}

/** The offset just past the first scan's header once the bytes hold it, undefined while more are needed. */
function firstScanEnd(b: Uint8Array): number | undefined {
  let pos = 2; // after SOI
  for (;;) {
    if (pos >= b.length) return undefined;
    if (b[pos] !== 0xff) throw undecodable("The JPEG header is truncated or corrupt.");
    while (pos < b.length && b[pos] === 0xff) pos++; // fill bytes
    if (pos >= b.length) return undefined;
    const marker = b[pos++]!;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // TEM, RSTn: no length
    if (marker === 0xd8 || marker === 0xd9) throw undecodable("The JPEG ends before its first scan.");
    if (pos + 2 > b.length) return undefined;
    const next = pos + ((b[pos]! << 8) | b[pos + 1]!);
    if (next < pos + 2) throw undecodable("The JPEG header is truncated or corrupt.");
    if (next > b.length) return undefined;
    if (marker === SOS) return next;
    pos = next;
  }
}
