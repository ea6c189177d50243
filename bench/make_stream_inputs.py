"""Write the streamed-input images `npm run bench:memory` sends (never committed).

  /usr/bin/python3 bench/make_stream_inputs.py OUT_DIR --baseline-pixels N --progressive-pixels N \
      --png-pixels N --streamed-bytes N --max-scans N --max-idat N

Each is what the streaming pipeline accepts at or near its limits (src/config.ts, passed in by bench/memory.mjs),
shaped like what people send (the photograph samples/photos/chelsea.jpg scaled up with grain; screenshots of
flat colours and text-like stripes), plus the structure bombs at the largest counts still accepted. Files:
  stream-baseline-50mp.jpg     baseline 4:2:0 JPEG at the pixel limit, within the streamed body limit
  stream-phone-12mp.jpg        a 12 MP phone photo (4032x3024 baseline 4:2:0, ~4-5 MB)
  stream-progressive-12mp.jpg  a 12 MP progressive 4:2:0 JPEG (the costliest progressive form per pixel)
  stream-progressive-444.jpg   a progressive 4:4:4 JPEG at the progressive pixel limit
  stream-png-50mp.png          an RGB screenshot-like PNG at the pixel limit
  bomb-scans.jpg               a 12 MP progressive JPEG with exactly --max-scans real scans (needs cjpeg)
  bomb-idat.png                a 2048x2048 PNG whose zlib stream is cut into --max-idat IDAT chunks
"""

import argparse
import io
import math
import os
import struct
import subprocess
import tempfile
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def photo(width: int, height: int, grain: float, seed: int) -> Image.Image:
    base = (
        Image.open(os.path.join(ROOT, "samples/photos/chelsea.jpg"))
        .convert("RGB")
        .resize((width, height), Image.BILINEAR)
    )
    rng = np.random.default_rng(seed)
    # Row bands keep the peak memory of a 50 MP image with grain to a few hundred MB.
    out = np.empty((height, width, 3), dtype=np.uint8)
    pixels = np.asarray(base)
    for y in range(0, height, 1024):
        band = pixels[y : y + 1024].astype(np.int16) + rng.normal(0, grain, pixels[y : y + 1024].shape).astype(np.int16)
        out[y : y + 1024] = np.clip(band, 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def screenshot(width: int, height: int, seed: int) -> Image.Image:
    """Flat panels and rows of short dark dashes, like text on a screen: compresses as screenshots do."""
    rng = np.random.default_rng(seed)
    out = np.full((height, width, 3), 245, dtype=np.uint8)
    for _ in range(40):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        out[y0 : y0 + rng.integers(50, 800), x0 : x0 + rng.integers(50, 1600)] = rng.integers(0, 255, 3)
    for y in range(40, height - 20, 36):
        xs = rng.integers(0, width - 200, 12)
        for x in xs:
            out[y : y + 14, x : x + rng.integers(20, 180)] = 30
    return Image.fromarray(out)


def side(pixels: int, aspect: float) -> tuple[int, int]:
    """The largest width x height of this aspect (w/h) with width*height <= pixels, both multiples of 16."""
    h = int(math.sqrt(pixels / aspect)) // 16 * 16
    w = int(pixels / h) // 16 * 16
    return w, h


def encode(image: Image.Image, max_bytes: int, **options) -> bytes:
    """JPEG at the highest quality of a few whose file is within max_bytes."""
    for quality in (92, 88, 84, 80, 75, 70, 60):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, **options)
        if buffer.tell() <= max_bytes:
            return buffer.getvalue()
    raise SystemExit(f"no quality fits {max_bytes} bytes")


def write(out: str, name: str, data: bytes, what: str) -> None:
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    print(f"  {name}: {what}, {len(data) / 1e6:.2f} MB")


def many_scans(image: Image.Image, scans: int) -> bytes:
    """A valid progressive JPEG of exactly `scans` scans, written by cjpeg (Debian's libjpeg-turbo-progs) from a
    scan script: one DC scan, then AC bands as narrow as the count allows, luma first. Every scan carries real
    coefficients, so the decoder does a scan's full work each time (repeating one scan would be refused as a
    bogus progression)."""
    ac = scans - 1
    bands = [ac - 2 * (ac // 3), ac // 3, ac // 3]  # Y, Cb, Cr
    lines = ["0,1,2: 0 0 0 0;"]
    for component, count in enumerate(bands):
        edges = [1 + 63 * i // count for i in range(count + 1)]
        lines += [f"{component}: {edges[i]} {edges[i + 1] - 1} 0 0;" for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        image.save(os.path.join(tmp, "in.ppm"))
        with open(os.path.join(tmp, "scans.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return subprocess.run(
            ["cjpeg", "-quality", "92", "-scans", os.path.join(tmp, "scans.txt"), os.path.join(tmp, "in.ppm")],
            check=True,
            capture_output=True,
        ).stdout


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def idat_flood(image: Image.Image, chunks: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    png = buffer.getvalue()
    # Gather the IDAT payloads, then cut the zlib stream into `chunks` nearly equal pieces.
    at, head, data = 8, None, b""
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        if kind == b"IHDR":
            head = png[at : at + 12 + length]
        elif kind == b"IDAT":
            data += png[at + 8 : at + 8 + length]
        at += 12 + length
    assert head is not None and len(data) >= chunks
    bounds = [len(data) * i // chunks for i in range(chunks + 1)]
    body = b"".join(chunk(b"IDAT", data[bounds[i] : bounds[i + 1]]) for i in range(chunks))
    return png[:8] + head + body + chunk(b"IEND", b"")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="directory for the images")
    p.add_argument("--baseline-pixels", type=int, required=True, help="MAX_JPEG_PIXELS")
    p.add_argument("--progressive-pixels", type=int, required=True, help="MAX_PROGRESSIVE_JPEG_PIXELS")
    p.add_argument("--png-pixels", type=int, required=True, help="MAX_PNG_PIXELS")
    p.add_argument(
        "--streamed-bytes", type=int, required=True, help="MAX_STREAMED_IMAGE_BYTES: a streamed file's limit"
    )
    p.add_argument("--max-scans", type=int, required=True, help="MAX_JPEG_SCANS: the most scans a JPEG may have")
    p.add_argument("--max-idat", type=int, required=True, help="MAX_IDAT_CHUNKS: the most IDAT chunks a PNG may have")
    a = p.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)
    w, h = side(a.baseline_pixels, 3 / 2)
    big = encode(photo(w, h, 6, 11), a.streamed_bytes)
    write(out, "stream-baseline-50mp.jpg", big, f"{w}x{h} baseline 4:2:0")
    phone = photo(4032, 3024, 6, 12)
    write(out, "stream-phone-12mp.jpg", encode(phone, 5_500_000), "4032x3024 baseline 4:2:0")
    progressive = encode(phone, a.streamed_bytes, progressive=True)
    write(out, "stream-progressive-12mp.jpg", progressive, "4032x3024 progressive 4:2:0")
    w, h = side(a.progressive_pixels, 3 / 2)
    write(
        out,
        "stream-progressive-444.jpg",
        encode(photo(w, h, 6, 13), a.streamed_bytes, progressive=True, subsampling=0),
        f"{w}x{h} progressive 4:4:4",
    )
    w, h = side(a.png_pixels, 16 / 9)
    buffer = io.BytesIO()
    screenshot(w, h, 14).save(buffer, format="PNG", compress_level=6)
    assert buffer.tell() <= a.streamed_bytes
    write(out, "stream-png-50mp.png", buffer.getvalue(), f"{w}x{h} RGB screenshot")
    w, h = side(a.progressive_pixels // 2, 4 / 3)
    scans = many_scans(photo(w, h, 6, 15), a.max_scans)
    assert scans.count(b"\xff\xda") == a.max_scans
    write(out, "bomb-scans.jpg", scans, f"{w}x{h} progressive, {a.max_scans} scans")
    write(out, "bomb-idat.png", idat_flood(screenshot(2048, 2048, 16), a.max_idat), f"2048x2048, {a.max_idat} IDATs")


if __name__ == "__main__":
    main()
