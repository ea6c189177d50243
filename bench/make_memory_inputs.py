"""Write the images `npm run bench:memory` sends: every input form at its limit (never committed).

  /usr/bin/python3 bench/make_memory_inputs.py OUT_DIR --baseline-pixels N --progressive-pixels N --png-pixels N \
      --image-bytes N --webp-pixels N --webp-lossless-pixels N --webp-alpha-pixels N

The limits come from src/config.ts (bench/memory.mjs reads them there and passes them in). Pictures are a
real photograph (samples/photos/chelsea.jpg, scikit-image, public domain) scaled up, with grain added so the
JPEG is as large as a phone photo of that size; noise-only images would be larger still but are not what a
user sends. Files:
  photo-5mb.jpg         the largest baseline JPEG allowed, ~5 MB (a phone photo sent in Workers AI's JSON form)
  baseline-max.jpg      the same pixels with more grain, as large as a base64 body within the limit allows
  progressive-max.jpg   the largest progressive JPEG allowed
  wide.jpg              65000x240 baseline: under the pixel limit, but DCT scaling cannot bring it near 224
  png-max.png           a PNG at its pixel limit, RGB
  png-double-ihdr.png   hostile: a 1x1 IHDR first, then a second IHDR of 8000x8000 whose IDAT matches it
  webp-max.webp         a lossy WebP at its pixel limit, within the image file limit
  webp-lossless-max.webp a lossless 1920x1080 screenshot-like WebP (at its pixel limit)
  webp-alpha-max.webp   a lossy WebP with alpha at its pixel limit
"""

import argparse
import io
import math
import os
import struct
import zlib

import numpy as np
from make_stream_inputs import screenshot
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def photo(width: int, height: int, grain: float, seed: int) -> Image.Image:
    base = (
        Image.open(os.path.join(ROOT, "samples/photos/chelsea.jpg"))
        .convert("RGB")
        .resize((width, height), Image.BILINEAR)
    )
    rng = np.random.default_rng(seed)
    pixels = np.asarray(base, dtype=np.int16) + rng.normal(0, grain, (height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def side(pixels: int, aspect: float) -> tuple[int, int]:
    """The largest width x height of this aspect (w/h) with width*height <= pixels, both multiples of 16."""
    h = int(math.sqrt(pixels / aspect)) // 16 * 16
    w = int(pixels / h) // 16 * 16
    return w, h


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def double_ihdr_png(width: int, height: int) -> bytes:
    """A PNG whose first IHDR says 1x1 and whose second says width x height, with IDAT for the second."""
    row = b"\x00" + bytes(3 * width)
    idat = zlib.compress(row * height, 9)

    def ihdr(w: int, h: int) -> bytes:
        return chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))

    return b"\x89PNG\r\n\x1a\n" + ihdr(1, 1) + ihdr(width, height) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def save(image: Image.Image, path: str, max_bytes: int = 0, **options) -> None:
    """Saves `image`; with max_bytes, at the highest JPEG quality whose file is not larger."""
    for quality in range(100, 49, -1) if max_bytes else [options.pop("quality", 95)]:
        buffer = io.BytesIO()
        image.save(buffer, quality=quality, **options)
        if not max_bytes or buffer.tell() <= max_bytes:
            break
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    print(f"  {os.path.basename(path)}: {image.width}x{image.height}, {len(buffer.getvalue()) / 1e6:.1f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="directory for the images")
    p.add_argument("--baseline-pixels", type=int, required=True, help="MAX_JPEG_PIXELS")
    p.add_argument("--progressive-pixels", type=int, required=True, help="MAX_PROGRESSIVE_JPEG_PIXELS")
    p.add_argument("--png-pixels", type=int, required=True, help="MAX_PNG_PIXELS")
    p.add_argument(
        "--image-bytes", type=int, required=True, help="MAX_IMAGE_BYTES: the largest image file, in any form"
    )
    p.add_argument("--webp-pixels", type=int, required=True, help="MAX_WEBP_PIXELS (lossy)")
    p.add_argument("--webp-lossless-pixels", type=int, required=True, help="MAX_WEBP_LOSSLESS_PIXELS")
    p.add_argument("--webp-alpha-pixels", type=int, required=True, help="MAX_WEBP_ALPHA_PIXELS (lossy with alpha)")
    a = p.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)
    w, h = side(a.baseline_pixels, 3 / 2)
    # Workers AI's form for "a 5 MB photo", within the image file limit.
    save(photo(w, h, 8, 1), os.path.join(out, "photo-5mb.jpg"), max_bytes=min(5_000_000, a.image_bytes), format="JPEG")
    save(photo(w, h, 30, 2), os.path.join(out, "baseline-max.jpg"), max_bytes=a.image_bytes, format="JPEG")
    w, h = side(a.progressive_pixels, 3 / 2)
    save(photo(w, h, 12, 3), os.path.join(out, "progressive-max.jpg"), format="JPEG", quality=95, progressive=True)
    save(photo(65000, 240, 12, 4), os.path.join(out, "wide.jpg"), format="JPEG", quality=90)
    w, h = side(a.png_pixels, 16 / 9)
    save(photo(w, h, 12, 5), os.path.join(out, "png-max.png"), format="PNG", compress_level=1)
    with open(os.path.join(out, "png-double-ihdr.png"), "wb") as f:
        f.write(double_ihdr_png(8000, 8000))
    print(
        "  png-double-ihdr.png: 1x1 then 8000x8000, "
        f"{os.path.getsize(os.path.join(out, 'png-double-ihdr.png')) / 1e6:.2f} MB"
    )
    # WebP at each of its three limits; lossy ones at the highest of a few qualities that fits the file limit
    # (a 16 MP WebP takes seconds to encode, so not every quality is tried)
    w, h = side(a.webp_pixels, 3 / 2)
    save_webp(photo(w, h, 8, 6), os.path.join(out, "webp-max.webp"), a.image_bytes)
    # Lossless WebP is what screenshots are saved as: a 1920x1080 screenshot (2.07 MP, at the limit).
    w, h = (1920, 1080) if 1920 * 1080 <= a.webp_lossless_pixels else side(a.webp_lossless_pixels, 16 / 9)
    save(screenshot(w, h, 7), os.path.join(out, "webp-lossless-max.webp"), format="WEBP", lossless=True)
    w, h = side(a.webp_alpha_pixels, 4 / 3)
    rgba = photo(w, h, 8, 8).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((w, h)))
    save_webp(rgba, os.path.join(out, "webp-alpha-max.webp"), a.image_bytes)


def save_webp(image: Image.Image, path: str, max_bytes: int) -> None:
    for quality in (90, 75, 60, 45):
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", quality=quality)
        if buffer.tell() <= max_bytes:
            break
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    print(
        f"  {os.path.basename(path)}: {image.width}x{image.height} {image.mode}, "
        f"quality {quality}, {buffer.tell() / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
