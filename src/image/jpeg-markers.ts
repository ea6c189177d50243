/**
 * Walks the marker segments of a JPEG header (ITU T.81, B.1.1.2) without decoding anything, for the size probe
 * and the EXIF orientation. Stops at the first scan (SOS): what follows is entropy-coded data.
 */
import { ImageError, undecodable } from "./errors";

export interface JpegSegment {
  marker: number; // the byte after 0xFF, e.g. 0xE1 for APP1
  start: number; // offset of the payload (after the 2-byte length)
  end: number; // offset just past the payload
}

/** SOF0-SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames. */
export function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

export const SOS = 0xda;

/** The segments from just after SOI up to and including SOS; throws 422 on a header cut short or malformed. */
export function* jpegSegments(bytes: Uint8Array): Generator<JpegSegment> {
  let pos = 2; // after SOI (FF D8), which the caller has checked
  for (;;) {
    if (pos >= bytes.length || bytes[pos] !== 0xff) throw undecodable("The JPEG header is truncated or corrupt.");
    while (pos < bytes.length && bytes[pos] === 0xff) pos++; // fill bytes (B.1.1.2)
    const marker = bytes[pos++];
    if (marker === undefined) throw undecodable("The JPEG header is truncated.");
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // TEM, RSTn: no length
    if (marker === 0xd8 || marker === 0xd9) throw undecodable("The JPEG ends before its first scan.");
    if (pos + 2 > bytes.length) throw undecodable("The JPEG header is truncated.");
    const length = (bytes[pos]! << 8) | bytes[pos + 1]!;
    const end = pos + length;
    if (length < 2 || end > bytes.length) throw undecodable("The JPEG header is truncated or corrupt.");
    yield { marker, start: pos + 2, end };
    if (marker === SOS) return;
    pos = end;
  }
}

/**
 * Most scans accepted in one JPEG. Each scan is a pass over the coefficients of the components it carries, so
 * scans, not bytes, decide a progressive JPEG's work: a 4 MiB file of ~349k one-run scans decoded for ~90 s
 * (docs/platform-notes.md). Encoders write few: libjpeg's default progressive script 10 for a colour image,
 * mozjpeg's optimised scripts around 10-20, a sequential file one per component at most. 100 leaves room and
 * bounds the work to well under a second at the pixel limits (libjpeg-turbo's djpeg offers `-maxscans` for
 * the same reason; TurboJPEG 3 uses 500 when asked to limit).
 */
export const MAX_JPEG_SCANS = 100;

/**
 * Counts the scans (SOS markers) of a whole JPEG and refuses a file with more than MAX_JPEG_SCANS, before any
 * decoding. Entropy-coded data holds 0xFF only stuffed (FF 00) or as a restart marker (FF D0-D7), so every
 * other marker is found by one pass over the bytes; segments between scans (DHT, DQT, DRI...) are skipped by
 * their length. Work: one read of each byte.
 */
export function checkJpegScans(bytes: Uint8Array): number {
  let scans = 0;
  let pos = 2;
  // Header segments up to the first scan, then alternately entropy-coded data and marker segments.
  for (;;) {
    while (pos < bytes.length && !(bytes[pos] === 0xff && isMarker(bytes[pos + 1]))) pos++;
    if (pos + 1 >= bytes.length) return scans; // the file ends (a truncated one decodes as far as it goes)
    while (pos + 1 < bytes.length && bytes[pos + 1] === 0xff) pos++; // fill bytes
    const marker = bytes[pos + 1]!;
    pos += 2;
    if (marker === 0xd9) return scans; // EOI
    if (marker === 0x01) continue; // TEM: no length
    if (marker === SOS && ++scans > MAX_JPEG_SCANS) {
      throw new ImageError(
        "undecodable_image",
        `The JPEG has more than ${MAX_JPEG_SCANS} scans; encoders write at most a few dozen, and each costs a pass over the image.`,
      );
    }
    if (pos + 2 > bytes.length) return scans;
    pos += (bytes[pos]! << 8) | bytes[pos + 1]!;
  }
}

/** A marker byte after 0xFF: not stuffing (00), not a restart marker (D0-D7) inside entropy-coded data. */
function isMarker(b: number | undefined): boolean {
  return b !== undefined && b !== 0x00 && !(b >= 0xd0 && b <= 0xd7);
}
