/**
 * Walks the marker segments of a JPEG header (ITU T.81, B.1.1.2) without decoding anything, for the size probe
 * and the EXIF orientation. Stops at the first scan (SOS): what follows is entropy-coded data.
 */
import { undecodable } from "./errors";

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
