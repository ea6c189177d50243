"""Write the images `npm run bench:decode` decodes (never committed; bench/decode.mjs runs this when one is missing).

  /usr/bin/python3 bench/make_decode_inputs.py [OUT_DIR]      # default bench/.inputs/decode

A file that exists is kept, so the benchmark's inputs stay the same from run to run. Photographs are
samples/photos/chelsea.jpg (scikit-image, public domain) scaled up with grain and fine texture, so that a
12 MP JPEG at quality 92 is as large as a phone camera's (3-5 MB); screenshots are flat UI-like blocks with
rows of text-like noise. Files:
  baseline-12mp.jpg      4032x3024 baseline JPEG, quality 92, 4:2:0: a phone photo
  progressive-12mp.jpg   the same pixels as a progressive JPEG
  progressive-web.jpg    1920x1440 progressive JPEG, quality 85: a photo as the web serves it
  screenshot-phone.png   1170x2532 RGB PNG: a phone screenshot
  screenshot-4k.png      3840x2160 RGB PNG: a 4K desktop screenshot
  lossless-1080p.webp    1920x1080 lossless WebP of a screenshot-like picture
  tiny.jpg, tiny.png     1x1 images: a peer's process start-up with next to no decoding
"""

import argparse
import os

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def photo(width, height, seed):
    """The sample photograph at width x height with sensor-like grain and a fine texture on top."""
    rng = np.random.default_rng(seed)
    base = Image.open(os.path.join(ROOT, "samples", "photos", "chelsea.jpg")).convert("RGB")
    pixels = np.asarray(base.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    grain = rng.normal(0, 7, (height, width, 1)).astype(np.float32) + rng.normal(0, 3, (height, width, 3)).astype(
        np.float32
    )
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = 6 * np.sin(xx * 0.9 + 3 * np.sin(yy * 0.05)) * np.sin(yy * 0.7)
    return Image.fromarray(np.clip(pixels + grain + texture[..., None], 0, 255).astype(np.uint8))


def screenshot(width, height, seed):
    """Flat UI-like blocks (bars, cards, buttons) in a few colours, with rows of text-like noise on them."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 246, np.uint8)
    palette = np.array(
        [[255, 255, 255], [33, 150, 243], [236, 239, 241], [76, 175, 80], [38, 50, 56], [255, 193, 7]], np.uint8
    )
    image[: height // 20] = palette[1]
    for _ in range(40):
        w, h = rng.integers(width // 8, width // 2), rng.integers(height // 30, height // 6)
        x, y = rng.integers(0, width - w), rng.integers(height // 20, height - h)
        image[y : y + h, x : x + w] = palette[rng.integers(0, len(palette))]
    line = max(12, height // 90)  # a text line's height, glyph rows in its middle 60%
    for y in range(height // 20, height - line, line * 2):
        x0 = int(rng.integers(width // 30, width // 6))
        x1 = int(rng.integers(width // 2, width - width // 30))
        glyphs = rng.random((int(line * 0.6), x1 - x0)) < 0.3
        gaps = rng.random(x1 - x0) < 0.15  # word spaces
        glyphs[:, gaps] = False
        ink = palette[4] if image[y, x0].mean() > 128 else palette[0]
        image[y + line // 5 : y + line // 5 + glyphs.shape[0], x0:x1][glyphs] = ink
    return Image.fromarray(image)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "out",
        nargs="?",
        default=os.path.join(ROOT, "bench", ".inputs", "decode"),
        help="the directory to write into (default: %(default)s)",
    )
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)
    files = {
        "baseline-12mp.jpg": lambda p: photo(4032, 3024, 1).save(p, quality=92, subsampling=2),
        "progressive-12mp.jpg": lambda p: photo(4032, 3024, 1).save(p, quality=92, subsampling=2, progressive=True),
        "progressive-web.jpg": lambda p: photo(1920, 1440, 2).save(p, quality=85, subsampling=2, progressive=True),
        "screenshot-phone.png": lambda p: screenshot(1170, 2532, 3).save(p),
        "screenshot-4k.png": lambda p: screenshot(3840, 2160, 4).save(p),
        "lossless-1080p.webp": lambda p: screenshot(1920, 1080, 5).save(p, lossless=True),
        "tiny.jpg": lambda p: Image.new("RGB", (1, 1), (128, 64, 32)).save(p, quality=92),
        "tiny.png": lambda p: Image.new("RGB", (1, 1), (128, 64, 32)).save(p),
    }
    for name, write in files.items():
        path = os.path.join(out, name)
        if os.path.exists(path):
            continue
        write(path)
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
