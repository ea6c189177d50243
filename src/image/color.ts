/**
 * Pixel colour conversions, each bit-for-bit as Pillow does it, because training decodes with Pillow
 * (training/data.py, ImageFolder.load_rgb) and the Worker must see the pixels the model saw.
 */
import type { Raster } from "./raster";

/** Pillow's MULDIV255: round(a * b / 255) without a division (libImaging/ImPlatform.h). */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/**
 * BT.601 luma, as Pillow's convert("L") computes it from RGB (libImaging/Convert.c, L24):
 * (19595 R + 38470 G + 7471 B + 0x8000) >> 16, i.e. 0.299 R + 0.587 G + 0.114 B rounded.
 */
export function toLuma(image: Raster): Raster {
  if (image.channels === 1) return image;
  const { width, height, data } = image;
  const out = new Uint8Array(width * height);
  lumaInto(data, out);
  return { width, height, channels: 1, data: out };
}

/** RGB samples -> their luma, `out.length` pixels (one row, or a whole raster). */
export function lumaInto(rgb: Uint8Array, out: Uint8Array): void {
  for (let i = 0, j = 0; i < out.length; i++, j += 3) {
    out[i] = (rgb[j]! * 19595 + rgb[j + 1]! * 38470 + rgb[j + 2]! * 7471 + 0x8000) >>> 16;
  }
}

/**
 * CMYK samples as libjpeg returns them -> RGB. Pillow reads every CMYK JPEG with Adobe's inverted polarity
 * (JpegImagePlugin: rawmode "CMYK;I", "assume adobe conventions"), then converts with cmyk2rgb
 * (Convert.c): R = (255 - K) - (255 - K) * C / 255 with C, K the un-inverted inks. Same here.
 */
export function cmykToRgb(cmyk: Uint8Array, width: number, height: number): Raster {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < out.length; i += 4, j += 3) {
    const nk = cmyk[i + 3]!; // 255 - K with K = 255 - stored
    out[j] = nk - mulDiv255(255 - cmyk[i]!, nk);
    out[j + 1] = nk - mulDiv255(255 - cmyk[i + 1]!, nk);
    out[j + 2] = nk - mulDiv255(255 - cmyk[i + 2]!, nk);
  }
  return { width, height, channels: 3, data: out };
}

/**
 * One colour sample `c` with alpha `a` over an opaque background sample `bg`, as Pillow's alpha_composite
 * computes it for an opaque destination (libImaging/AlphaComposite.c, PRECISION_BITS = 7).
 */
export function compositeSample(c: number, a: number, bg: number): number {
  const t = (c * a + bg * (255 - a)) * 128 + (0x80 << 7);
  return (((t >> 8) + t) >> 8) >> 7;
}
