#!/usr/bin/python3
"""Writes the WebP fixtures: lossy, lossless and alpha images with what Pillow (training) decodes them to,
large ones the Worker must decode scaled, reference tensors for parity, and broken, hostile and animated
files. A script of its own beside make_image_fixtures.py so WebP's files neither move that one's bytes nor
push its index past 1 MB.

Usage (from the repository root; Debian 12's Pillow writes WebP through its libwebp 1.2.4, the version the
Worker's decoder is built from; also numpy and torch):
    /usr/bin/python3 scripts/make_webp_fixtures.py

Writes test/fixtures/images/webp/*.webp and test/fixtures/images/webp.ts (base64, as index.ts: the tests run
inside workerd, which cannot read files). Deterministic: running it twice writes the same bytes.
"""

import base64
import io
import json
import os
import struct
import sys

import numpy as np
from PIL import Image, features

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_image_fixtures import (
    BACKGROUND,
    IMAGENET_MEAN,
    IMAGENET_STD,
    alpha_plane,
    encode,
    pillow_rgb,  # noqa: E402
    preprocess,
    quadrants,
    reference_tensor,
)
from make_memory_fixtures import picture  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "test", "fixtures", "images", "webp")
INDEX = os.path.join(ROOT, "test", "fixtures", "images", "webp.ts")


def photo(name: str) -> Image.Image:
    return Image.open(os.path.join(ROOT, "samples", "photos", name)).convert("RGB")


def riff(*chunks: bytes) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def undecodable(data: bytes) -> bool:
    try:
        Image.open(io.BytesIO(data)).load()
        return False
    except Exception:
        return True


def main() -> int:
    if not features.check("webp"):
        print("this Pillow cannot write WebP", file=sys.stderr)
        return 1
    os.makedirs(OUT, exist_ok=True)
    files, decoded, parity = {}, {}, {}
    q = quadrants()
    qa = alpha_plane()

    # Each kind of still WebP, with what Pillow decodes it to (alpha over BACKGROUND).
    files["webp-lossy.webp"] = encode(Image.fromarray(q), "WEBP", quality=90)
    files["webp-lossless.webp"] = encode(Image.fromarray(q), "WEBP", lossless=True)
    files["webp-lossless-alpha.webp"] = encode(Image.fromarray(np.dstack([q, qa]), "RGBA"), "WEBP", lossless=True)
    files["webp-lossy-alpha.webp"] = encode(Image.fromarray(np.dstack([q, qa]), "RGBA"), "WEBP", quality=90)
    for name, data in files.items():
        decoded[name] = pillow_rgb(data)

    # Large ones: a 12 MP photo-sized lossy WebP (flat quadrants keep it ~23 KB) and a lossless one at
    # the lossless pixel limit (1000x1000).
    files["webp-12mp.webp"] = encode(Image.fromarray(quadrants(4032, 3024)), "WEBP", quality=75)
    files["webp-lossless-1mp.webp"] = encode(Image.fromarray(quadrants(1000, 1000)), "WEBP", lossless=True)
    # Real photographs for the cost model: lossless Huffman tables and transforms sized by real content.
    files["webp-photo-lossless.webp"] = encode(
        photo("coffee.jpg").resize((210, 140), Image.Resampling.LANCZOS), "WEBP", lossless=True
    )
    files["webp-photo-alpha.webp"] = encode(
        Image.merge(
            "RGBA",
            (
                *photo("chelsea.jpg").split(),
                Image.fromarray(np.tile(np.linspace(0, 255, 451).astype(np.uint8), (300, 1))),
            ),
        ),
        "WEBP",
        quality=80,
    )

    # Shapes that size libwebp's row buffers and rescaler differently, for the cost model (photo-like
    # gradients with noise, as make_memory_fixtures.py draws them).
    files["webp-wide-8000x240.webp"] = encode(picture(8000, 240), "WEBP", quality=60)
    files["webp-tall-240x8000.webp"] = encode(picture(240, 8000), "WEBP", quality=60)
    files["webp-lossless-wide-4000x200.webp"] = encode(Image.fromarray(quadrants(4000, 200)), "WEBP", lossless=True)

    # Broken, hostile and animated files.
    good = files["webp-lossy.webp"]
    files["webp-truncated.webp"] = good[: len(good) // 2]
    lossless = bytearray(files["webp-photo-lossless.webp"])
    for i in range(100, 160):
        lossless[i] ^= 0x5A  # inside the VP8L bitstream: its Huffman codes no longer decode
    # The RIFF sizes still match: only the decoder can tell (checked against Pillow below).
    files["webp-corrupt.webp"] = bytes(lossless)
    vp8 = good.index(b"VP8 ") + 8
    forged = bytearray(good)
    forged[vp8 + 6 : vp8 + 10] = struct.pack("<HH", 16383, 16383)  # 268 MP: over every limit
    files["webp-forged-huge.webp"] = bytes(forged)
    frames = [Image.fromarray(q), Image.fromarray(q[::-1].copy())]
    files["webp-animated.webp"] = encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, quality=80
    )
    # VP8X (no flags) with a 48x32 canvas (stored as size - 1, 24 bits each) and no image chunk at all.
    files["webp-vp8x-no-image.webp"] = riff(
        chunk(b"VP8X", bytes(4) + struct.pack("<I", 47)[:3] + struct.pack("<I", 31)[:3])
    )
    for name in ["webp-truncated.webp", "webp-corrupt.webp", "webp-vp8x-no-image.webp"]:
        if not undecodable(files[name]):
            print(f"{name} decodes in Pillow: make it broken", file=sys.stderr)
            return 1

    # Parity with training: Pillow's full decode + torch, against the Worker's scaled decode.
    coffee = photo("coffee.jpg")  # 600x400
    large = photo("chelsea.jpg").resize((2400, 1600), Image.Resampling.BICUBIC)  # 3.84 MP
    cases = {
        "parity-scaled.webp": (
            encode(coffee, "WEBP", quality=90),
            preprocess("rgb", 64, 56, IMAGENET_MEAN, IMAGENET_STD),
        ),
        "parity-large.webp": (
            encode(large, "WEBP", quality=50),
            preprocess("rgb", 128, 112, IMAGENET_MEAN, IMAGENET_STD),
        ),
        "parity-lossless-alpha.webp": (
            encode(
                Image.merge(
                    "RGBA",
                    (
                        *coffee.resize((150, 100), Image.Resampling.LANCZOS).split(),
                        Image.fromarray(np.tile(np.linspace(0, 255, 150).astype(np.uint8), (100, 1))),
                    ),
                ),
                "WEBP",
                lossless=True,
            ),
            preprocess("rgb", 40, 36, IMAGENET_MEAN, IMAGENET_STD, bg=(255, 128, 0)),
        ),
    }
    tensors = {}
    for name, (data, pre) in cases.items():
        files[name] = data
        tensors[name] = reference_tensor(pillow_rgb(data, bg=pre["background"]), pre, 3)
        crop = pre["crop"]
        parity[name] = {"preprocess": pre, "input": {"height": crop["height"], "width": crop["width"], "channels": 3}}

    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    lines = [
        "// Generated by scripts/make_webp_fixtures.py: do not edit, run the script.",
        "// The WebP fixtures as base64 (workerd tests cannot read files), what Pillow decodes the small ones to,",
        "// and torch-preprocessed tensors of Pillow's full decode for the parity tests.",
        "",
        'import type { InputShape, Preprocess } from "../../../src/package/manifest";',
        "",
        f"export const BACKGROUND: [number, number, number] = {json.dumps(list(BACKGROUND))};",
        "",
        "export const webpFiles: Record<string, string> = {",
        *[f'  "{n}": "{b64(d)}",' for n, d in sorted(files.items())],
        "};",
        "",
        "/** Pillow's RGB decode (alpha over BACKGROUND): [height, width, base64]. */",
        "export const webpDecoded: Record<string, [number, number, string]> = {",
        *[
            f'  "{n}": [{a.shape[0]}, {a.shape[1]}, "{b64(np.ascontiguousarray(a).tobytes())}"],'
            for n, a in sorted(decoded.items())
        ],
        "};",
        "",
        "/** Reference tensors (little-endian float32, HWC) and the preprocessing that made them. */",
        "export const webpParity: Record<string, { preprocess: Preprocess; input: InputShape; expected: string }> = {",
        *[
            f'  "{n}": {{ preprocess: {json.dumps(p["preprocess"])}, input: {json.dumps(p["input"])}, '
            f'expected: "{b64(tensors[n].tobytes())}" }},'
            for n, p in sorted(parity.items())
        ],
        "};",
        "",
    ]
    index = "\n".join(lines)
    with open(INDEX, "w") as f:
        f.write(index)
    total = len(index)
    print(f"wrote {len(files)} WebP fixtures and webp.ts: {total / 1024:.0f} KiB")
    for name, data in sorted(files.items()):
        print(f"  {name}: {len(data)} bytes")
    if total > 1_000_000:
        print("fixtures exceed 1 MB: make them smaller", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
