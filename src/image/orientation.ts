/**
 * EXIF orientation (tag 0x0112, EXIF 2.32 section 4.6.4): phones store photos as the sensor saw them and
 * record how to turn them for display. Decoders ignore it; people expect the picture as their viewer shows
 * it, so we apply it after decoding (as Pillow's ImageOps.exif_transpose does).
 */
import { jpegSegments } from "./jpeg-markers";
import type { Raster } from "./raster";

export type Orientation = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;

/** The orientation in the JPEG's EXIF block; 1 (as stored) when there is none or it cannot be read. */
export function readJpegOrientation(jpeg: Uint8Array): Orientation {
  try {
    for (const s of jpegSegments(jpeg)) {
      if (s.marker === 0xe1 && s.end - s.start > 14 && isExifSignature(jpeg, s.start)) {
        return tiffOrientation(jpeg.subarray(s.start + 6, s.end));
      }
    }
  } catch {
    // A broken header is the decoder's to report; orientation falls back to "as stored".
  }
  return 1;
}

/** Orientations 5 to 8 turn the picture a quarter: width and height swap. */
export function swapsAxes(o: Orientation): boolean {
  return o >= 5;
}

/** The raster as it should be displayed. */
export function applyOrientation(image: Raster, o: Orientation): Raster {
  if (o === 1) return image;
  const { width: w, height: h, channels: c, data } = image;
  const [ow, oh] = swapsAxes(o) ? [h, w] : [w, h];
  const out = new Uint8Array(data.length);
  for (let y = 0, i = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++, i += c) {
      const s = storedIndex(x, y, w, h, o) * c;
      for (let k = 0; k < c; k++) out[i + k] = data[s + k]!;
    }
  }
  return { width: ow, height: oh, channels: c, data: out };
}

/**
 * For the displayed pixel (x, y) of a picture stored w x h, the index of the stored pixel it shows: the inverse
 * of the EXIF transform.
 */
export function storedIndex(x: number, y: number, w: number, h: number, o: Orientation): number {
  switch (o) {
    case 1:
      return y * w + x;
    case 2:
      return y * w + (w - 1 - x); // mirror left-right
    case 3:
      return (h - 1 - y) * w + (w - 1 - x); // rotate 180
    case 4:
      return (h - 1 - y) * w + x; // mirror top-bottom
    case 5:
      return x * w + y; // transpose
    case 6:
      return (h - 1 - x) * w + y; // rotate 90 clockwise
    case 7:
      return (h - 1 - x) * w + (w - 1 - y); // transverse
    case 8:
      return x * w + (w - 1 - y); // rotate 90 counter-clockwise
  }
}

function isExifSignature(b: Uint8Array, at: number): boolean {
  return b[at] === 0x45 && b[at + 1] === 0x78 && b[at + 2] === 0x69 && b[at + 3] === 0x66 && b[at + 4] === 0 && b[at + 5] === 0;
}

/** Reads tag 0x0112 from IFD0 of a TIFF structure (TIFF 6.0, section 2); 1 if absent or malformed. */
function tiffOrientation(tiff: Uint8Array): Orientation {
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const order = view.getUint16(0);
  if (order !== 0x4949 && order !== 0x4d4d) return 1; // "II" little-endian, "MM" big-endian
  const le = order === 0x4949;
  if (tiff.length < 8 || view.getUint16(2, le) !== 42) return 1;
  const ifd = view.getUint32(4, le);
  if (ifd + 2 > tiff.length) return 1;
  const count = view.getUint16(ifd, le);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > tiff.length) return 1;
    if (view.getUint16(entry, le) === 0x0112) {
      const value = view.getUint16(entry + 8, le); // type SHORT, count 1: the value sits in the entry
      return value >= 1 && value <= 8 ? (value as Orientation) : 1;
    }
  }
  return 1;
}
