#!/usr/bin/python3
"""Writes the fixtures of the streaming JPEG decoder (src/image/jpeg-stream.ts): a real photograph as
baseline, progressive, restart-marker, arithmetic, greyscale, 4:4:4 and CMYK JPEGs, a 12 MP progressive one
and a progressive file whose scans a test repeats into a scan bomb. The progressive, restart and arithmetic
variants are made with jpegtran from the baseline one, which keeps the DCT coefficients: every one of them
must decode to exactly the baseline's pixels.

Usage (from the repository root; Debian 12's Pillow and libjpeg-turbo-progs, i.e. jpegtran 2.1.5):
    /usr/bin/python3 scripts/make_jpeg_stream_fixtures.py          # test fixtures (committed)
    /usr/bin/python3 scripts/make_jpeg_stream_fixtures.py --bench  # + 12 MP photo-like JPEGs for the benchmark

Writes test/fixtures/images/jpeg-stream/*.jpg and test/fixtures/images/jpeg-stream.ts (base64: the tests run
inside workerd, which cannot read files); --bench also bench/.jpeg-stream/{baseline,progressive}-12mp.jpg
(~3 MB each, not committed). Deterministic: running it twice writes the same bytes.
"""

import base64
import io
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "test", "fixtures", "images", "jpeg-stream")
INDEX = os.path.join(ROOT, "test", "fixtures", "images", "jpeg-stream.ts")
BENCH = os.path.join(ROOT, "bench", ".jpeg-stream")
JPEGTRAN = "/usr/bin/jpegtran"

# Every scan at full precision (Ah = Al = 0): DC of all three components, then each component's AC band. A
# repeated "0: 1 63 0 0;" scan is still a valid progression for libjpeg (no warning), which is what makes
# the scan bomb built from this file in the test legal-looking.
SIMPLE_SCANS = "0 1 2: 0 0 0 0;\n0: 1 63 0 0;\n1: 1 63 0 0;\n2: 1 63 0 0;\n"


def photo(name: str) -> Image.Image:
    return Image.open(os.path.join(ROOT, "samples", "photos", name)).convert("RGB")


def encode(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def jpegtran(data: bytes, *args: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        if "-scans" in args:  # the scan script goes in a file
            path = os.path.join(tmp, "scans.txt")
            with open(path, "w") as f:
                f.write(SIMPLE_SCANS)
            args = tuple(path if a == "@scans" else a for a in args)
        src = os.path.join(tmp, "in.jpg")
        with open(src, "wb") as f:
            f.write(data)
        return subprocess.run([JPEGTRAN, "-copy", "none", *args, src], check=True, capture_output=True).stdout


def photo_12mp() -> Image.Image:
    """4032x3024 from the four sample photos, with sensor-like noise: a phone photo's size and entropy."""
    tiles = [
        photo(n).resize((2016, 1512), Image.Resampling.BICUBIC)
        for n in ["chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg"]
    ]
    a = np.zeros((3024, 4032, 3), np.float32)
    for i, t in enumerate(tiles):
        y, x = divmod(i, 2)
        a[y * 1512 : (y + 1) * 1512, x * 2016 : (x + 1) * 2016] = np.asarray(t, np.float32)
    rng = np.random.default_rng(12)
    a += rng.normal(0, 5, a.shape).astype(np.float32)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    files = {}
    coffee = photo("coffee.jpg")  # 600x400
    base = encode(coffee, quality=80)  # Pillow's default 4:2:0
    files["stream-photo.jpg"] = base
    files["stream-photo-progressive.jpg"] = jpegtran(base, "-progressive")
    files["stream-photo-progressive-restart.jpg"] = jpegtran(base, "-progressive", "-restart", "1")  # RST every MCU row
    files["stream-photo-arithmetic.jpg"] = jpegtran(base, "-arithmetic", "-progressive")
    files["stream-photo-simple-scans.jpg"] = jpegtran(base, "-scans", "@scans")
    # The same scans on a 64x48 image: small scans for the test to repeat into a scan bomb.
    files["stream-tiny-simple-scans.jpg"] = jpegtran(
        encode(coffee.resize((64, 48), Image.Resampling.LANCZOS), quality=80), "-scans", "@scans"
    )
    small = coffee.resize((300, 200), Image.Resampling.LANCZOS)
    files["stream-grey-progressive.jpg"] = encode(small.convert("L"), quality=80, progressive=True)
    files["stream-444-progressive.jpg"] = encode(small, quality=80, progressive=True, subsampling=0)
    files["stream-cmyk.jpg"] = encode(coffee.resize((150, 100), Image.Resampling.LANCZOS).convert("CMYK"), quality=80)
    # The existing 4032x3024 quadrants (test/fixtures/images/jpeg-12mp.jpg, baseline) made progressive.
    with open(os.path.join(ROOT, "test", "fixtures", "images", "jpeg-12mp.jpg"), "rb") as f:
        files["stream-12mp-progressive.jpg"] = jpegtran(f.read(), "-progressive")

    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    lines = [
        "// Generated by scripts/make_jpeg_stream_fixtures.py: do not edit, run the script.",
        "// The streaming JPEG decoder's fixtures as base64 (workerd tests cannot read files).",
        "",
        "export const jpegStreamFiles: Record<string, string> = {",
        *[f'  "{n}": "{base64.b64encode(d).decode()}",' for n, d in sorted(files.items())],
        "};",
        "",
    ]
    with open(INDEX, "w") as f:
        f.write("\n".join(lines))
    for name, data in sorted(files.items()):
        print(f"{name}: {len(data)} bytes")

    if "--bench" in sys.argv[1:]:
        os.makedirs(BENCH, exist_ok=True)
        big = encode(photo_12mp(), quality=90)
        for name, data in [("baseline-12mp.jpg", big), ("progressive-12mp.jpg", jpegtran(big, "-progressive"))]:
            with open(os.path.join(BENCH, name), "wb") as f:
                f.write(data)
            print(f"{os.path.join(BENCH, name)}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
