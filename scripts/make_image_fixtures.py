#!/usr/bin/python3
"""Writes the image pipeline's test fixtures: small images in every format the Worker decodes, broken and
unsupported ones, and reference tensors computed the way training preprocesses (Pillow decode, torch resize).

Usage (from the repository root; needs Pillow, numpy, torch and scikit-image, as Debian 12 ships them):
    /usr/bin/python3 scripts/make_image_fixtures.py

Writes test/fixtures/images/*.{jpg,png,gif,webp,bmp,f32} and test/fixtures/images/index.ts, which carries the
same bytes as base64: the tests run inside workerd, which cannot read files, and binary imports would need a
bundler rule. Deterministic: running it twice writes the same bytes. Keep the total under 1 MB.
"""

import base64
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "images")
W, H = 48, 32  # the "quadrants" picture: small, and wider than tall
BACKGROUND = (30, 60, 90)  # what the alpha fixtures are composited over in the tests
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def quadrants(w=W, h=H) -> np.ndarray:
    """Four flat colours and a grey bar: wrong channel order, orientation or palette shows at once."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (220, 40, 40)
    a[: h // 2, w // 2 :] = (40, 200, 60)
    a[h // 2 :, : w // 2] = (40, 60, 210)
    a[h // 2 :, w // 2 :] = (240, 230, 120)
    a[h // 2 - 2 : h // 2 + 2, w // 4 : 3 * w // 4] = (128, 128, 128)
    return a


def alpha_plane(w=W, h=H) -> np.ndarray:
    """Opaque, transparent and two partial alphas, one per quadrant row band, plus a horizontal ramp."""
    a = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))
    a[: h // 4] = 255
    a[h // 4 : h // 2, : w // 3] = 0
    return a


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(width, height, depth, color_type, rows, interlace=0, idat=None) -> bytes:
    """A PNG written by hand: Pillow cannot write 16-bit colour, 2-bit grey or interlaced PNGs.
    `rows(x0, dx, y0, dy)` returns the packed scanlines of one (sub)image, without filter bytes;
    `idat` replaces the compressed data (for forged files)."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in (passes if interlace else [(0, 0, 1, 1)]) if idat is None else []:
        if x0 >= width or y0 >= height:
            continue
        prev = None
        for i, line in enumerate(rows(x0, dx, y0, dy)):
            raw += bytes([i % 5]) + filter_line(line, prev, i % 5, bytes_per_pixel(depth, color_type))
            prev = line
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, interlace)
    body = zlib.compress(raw, 9) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def bytes_per_pixel(depth, color_type):
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    return max(1, channels * depth // 8)


def filter_line(line: bytes, prev, kind: int, bpp: int) -> bytes:
    """PNG filter `kind` (0-4; rows cycle through all five, so the decoder's unfiltering is tested)."""
    prev = prev if prev is not None else bytes(len(line))
    out = bytearray(len(line))
    for i, x in enumerate(line):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if kind == 0:
            p = 0
        elif kind == 1:
            p = a
        elif kind == 2:
            p = b
        elif kind == 3:
            p = (a + b) // 2
        else:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out[i] = (x - p) & 0xFF
    return bytes(out)


def sub_rows(arr: np.ndarray, pack):
    def rows(x0, dx, y0, dy):
        return [pack(arr[y, x0::dx]) for y in range(y0, arr.shape[0], dy)]

    return rows


def composite(rgb: np.ndarray, alpha: np.ndarray, bg) -> np.ndarray:
    """Pillow's alpha_composite over an opaque background, done by Pillow itself."""
    fg = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    base = Image.new("RGBA", fg.size, tuple(bg) + (255,))
    return np.asarray(Image.alpha_composite(base, fg).convert("RGB"))


def pillow_rgb(data: bytes, bg=BACKGROUND, exif=False) -> np.ndarray:
    """What training's ImageFolder.load_rgb makes of the bytes (plus EXIF orientation where asked)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    if exif:
        img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, tuple(bg) + (255,)), img)
    return np.asarray(img.convert("RGB"))


def reference_tensor(rgb: np.ndarray, pre: dict, channels: int) -> np.ndarray:
    """The manifest's preprocessing in torch: shorter side (torchvision Resize(int) sizes), antialiased
    bilinear on the uint8 pixels as float, CenterCrop, /scale, (x - mean) / std. Returns HWC float32."""
    if pre["color"] == "gray":
        rgb = np.asarray(Image.fromarray(rgb).convert("L"))[..., None]
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float()[None]
    h, w = x.shape[-2:]
    s = pre["resize"]["shorter_side"]
    oh, ow = (int(s * h / w), s) if w <= h else (s, int(s * w / h))
    x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
    ch, cw = pre["crop"]["height"], pre["crop"]["width"]
    top, left = int(round((oh - ch) / 2.0)), int(round((ow - cw) / 2.0))
    x = x[0, :, top : top + ch, left : left + cw]
    x = x.expand(channels, -1, -1) if x.shape[0] == 1 else x
    mean = torch.tensor(pre["mean"]).view(-1, 1, 1)
    std = torch.tensor(pre["std"]).view(-1, 1, 1)
    x = (x / pre["scale"] - mean) / std
    return x.permute(1, 2, 0).contiguous().numpy().astype("<f4")


def preprocess(color, shorter, crop, mean, std, bg=(0, 0, 0)) -> dict:
    return {
        "color": color,
        "background": list(bg),
        "resize": {"shorter_side": shorter, "filter": "bilinear"},
        "crop": {"mode": "center", "height": crop, "width": crop},
        "scale": 255,
        "mean": mean,
        "std": std,
    }


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    files, decoded, parity = {}, {}, {}
    q = quadrants()
    qa = alpha_plane()
    grey = np.asarray(Image.fromarray(q).convert("L"))

    # Formats a person can send, each with what Pillow (training) decodes it to.
    files["jpeg-baseline.jpg"] = encode(Image.fromarray(q), "JPEG", quality=92)
    files["jpeg-progressive.jpg"] = encode(Image.fromarray(q), "JPEG", quality=92, progressive=True)
    files["jpeg-grey.jpg"] = encode(Image.fromarray(grey), "JPEG", quality=92)
    files["jpeg-cmyk.jpg"] = encode(Image.fromarray(q).convert("CMYK"), "JPEG", quality=92)
    files["png-grey.png"] = encode(Image.fromarray(grey), "PNG")
    files["png-grey-alpha.png"] = encode(Image.fromarray(np.dstack([grey, qa]), "LA"), "PNG")
    files["png-rgb.png"] = encode(Image.fromarray(q), "PNG")
    files["png-rgba.png"] = encode(Image.fromarray(np.dstack([q, qa]), "RGBA"), "PNG")
    pal = Image.fromarray(q).quantize(colors=6, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    files["png-palette-trns.png"] = encode(pal, "PNG", transparency=bytes([255, 0, 128, 255, 64, 255]), bits=4)
    # 16-bit: the high byte carries the 8-bit picture, the low byte noise that must not show.
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 4), dtype=np.uint16)
    rgba16 = np.dstack([q, qa]).astype(np.uint16) * 256 + noise
    files["png-rgba16.png"] = png_raw(W, H, 16, 6, sub_rows(rgba16, lambda r: r.astype(">u2").tobytes()))
    grey16 = grey.astype(np.uint16) * 256 + noise[..., 0]
    files["png-grey16.png"] = png_raw(W, H, 16, 0, sub_rows(grey16, lambda r: r.astype(">u2").tobytes()))
    files["png-rgb-interlaced.png"] = png_raw(W, H, 8, 2, sub_rows(q, lambda r: r.tobytes()), interlace=1)
    grey2 = (grey // 64).astype(np.uint8)  # 2-bit grey, 4 pixels a byte, interlaced
    files["png-grey2-interlaced.png"] = png_raw(
        W,
        H,
        2,
        0,
        sub_rows(grey2, lambda r: np.packbits(np.unpackbits(r[:, None], axis=1)[:, 6:].reshape(-1)).tobytes()),
        interlace=1,
    )
    for name, data in files.items():
        decoded[name] = pillow_rgb(data)
    # Pillow reads 16-bit grey as mode "I" and clips it to white on convert("RGB"): the reference is the
    # high byte, which is what Pillow does for 16-bit colour and what the picture is.
    decoded["png-grey16.png"] = np.repeat(grey[..., None], 3, -1)
    decoded["png-rgba16.png"] = composite(q, qa, BACKGROUND)
    decoded["png-grey2-interlaced.png"] = np.repeat((grey2 * 85)[..., None], 3, -1)

    # EXIF orientations 2-8: stored as the quadrants, shown as Pillow's exif_transpose shows them.
    for o in range(2, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        name = f"jpeg-orientation-{o}.jpg"
        files[name] = encode(Image.fromarray(q), "JPEG", quality=92, exif=exif.tobytes())
        decoded[name] = pillow_rgb(files[name], exif=True)

    # Broken, hostile and unsupported inputs.
    files["jpeg-truncated.jpg"] = files["jpeg-baseline.jpg"][:800]  # inside the scan: libjpeg only warns
    bad = bytearray(files["jpeg-baseline.jpg"])
    sof = bad.index(b"\xff\xc0")
    bad[sof + 9] = 7  # seven components in the frame header: libjpeg stops with a fatal error
    files["jpeg-corrupt.jpg"] = bytes(bad)
    sof = files["jpeg-baseline.jpg"].index(b"\xff\xc0")
    files["jpeg-forged-huge.jpg"] = (
        files["jpeg-baseline.jpg"][: sof + 5] + struct.pack(">HH", 65000, 65000) + files["jpeg-baseline.jpg"][sof + 9 :]
    )
    files["png-forged-huge.png"] = png_raw(65000, 65000, 8, 2, None, idat=zlib.compress(b"\x00" * 1000))
    files["png-forged-short.png"] = png_raw(1000, 1000, 8, 2, None, idat=zlib.compress(b"\x00" * 3001 * 10))
    good_png = files["png-rgb.png"]
    files["png-truncated.png"] = good_png[: len(good_png) // 2]
    bad = bytearray(good_png)
    bad[good_png.index(b"IDAT") + 10] ^= 0xFF  # inside the deflate stream
    files["png-corrupt-idat.png"] = bytes(bad)
    # Pillow's default lossy WebP: refused with 415 until the Worker decoded WebP; test/image/webp.test.ts now
    # decodes it (the WebP fixtures themselves come from scripts/make_webp_fixtures.py).
    files["image.webp"] = encode(Image.fromarray(q), "WEBP", quality=80)
    files["image.gif"] = encode(Image.fromarray(q).convert("P"), "GIF")
    files["image.bmp"] = encode(Image.fromarray(q[:8, :8]), "BMP")

    # A 12 MP photo-sized JPEG: flat quadrants and optimised Huffman tables keep it ~70 KB.
    files["jpeg-12mp.jpg"] = encode(Image.fromarray(quadrants(4032, 3024)), "JPEG", quality=75, optimize=True)

    # Parity with training: real photographs (scikit-image, CC0), preprocessed by torch from Pillow's decode.
    import skimage.data

    coffee = Image.fromarray(skimage.data.coffee())  # 600x400, CC0 (Rachel Michetti)
    chelsea = Image.fromarray(skimage.data.chelsea())  # 451x300, CC0 (Stefan van der Walt)
    small = coffee.resize((90, 60), Image.Resampling.LANCZOS)
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, 90).astype(np.uint8), (60, 1)))
    cases = {
        # exact decode, so the difference is the resize and normalisation arithmetic alone
        "parity-rgb.png": (encode(small, "PNG"), preprocess("rgb", 37, 32, IMAGENET_MEAN, IMAGENET_STD), 3),
        "parity-rgba.png": (
            encode(Image.merge("RGBA", (*small.split(), alpha)), "PNG"),
            preprocess("rgb", 40, 36, IMAGENET_MEAN, IMAGENET_STD, bg=(255, 128, 0)),
            3,
        ),
        # full-scale JPEG decode (ceil(34 * 7/8) = 30 < 31): libjpeg-turbo 2.0 (ours) against Pillow's libjpeg-turbo
        "parity-gray.jpg": (
            encode(chelsea.resize((51, 34), Image.Resampling.LANCZOS), "JPEG", quality=90),
            preprocess("gray", 31, 28, [0.286] * 3, [0.353] * 3),
            3,
        ),
        # DCT-scaled decode (2/8: 150x100) against Pillow's full 600x400 decode
        "parity-scaled.jpg": (
            encode(coffee, "JPEG", quality=90),
            preprocess("rgb", 64, 56, IMAGENET_MEAN, IMAGENET_STD),
            3,
        ),
    }
    for name, (data, pre, channels) in cases.items():
        files[name] = data
        t = reference_tensor(pillow_rgb(data, bg=pre["background"]), pre, channels)
        crop = pre["crop"]
        f32 = name.rsplit(".", 1)[0] + ".f32"
        files[f32] = t.tobytes()
        parity[name] = {
            "preprocess": pre,
            "input": {"height": crop["height"], "width": crop["width"], "channels": channels},
            "expected": f32,
        }

    total = 0
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        total += len(data)

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    lines = [
        "// Generated by scripts/make_image_fixtures.py: do not edit, run the script.",
        "// The fixture files as base64 (workerd tests cannot read files), what Pillow decodes each to, and the",
        "// torch-preprocessed tensors that parity tests compare against.",
        "",
        'import type { InputShape, Preprocess } from "../../../src/package/manifest";',
        "",
        f"export const BACKGROUND: [number, number, number] = {json.dumps(list(BACKGROUND))};",
        "",
        "export const files: Record<string, string> = {",
        *[f'  "{n}": "{b64(d)}",' for n, d in sorted(files.items()) if not n.endswith(".f32")],
        "};",
        "",
        "/** Pillow's RGB decode (training's load_rgb; EXIF applied; alpha over BACKGROUND): "
        "[height, width, base64]. */",
        "export const decoded: Record<string, [number, number, string]> = {",
        *[
            f'  "{n}": [{a.shape[0]}, {a.shape[1]}, "{b64(np.ascontiguousarray(a).tobytes())}"],'
            for n, a in sorted(decoded.items())
        ],
        "};",
        "",
        "/** Reference tensors (little-endian float32, HWC) and the preprocessing that made them. */",
        "export const parity: Record<string, { preprocess: Preprocess; input: InputShape; expected: string }> = {",
        *[
            f'  "{n}": {{ preprocess: {json.dumps(p["preprocess"])}, input: {json.dumps(p["input"])}, '
            f'expected: "{b64(files[p["expected"]])}" }},'
            for n, p in sorted(parity.items())
        ],
        "};",
        "",
    ]
    index = "\n".join(lines)
    with open(os.path.join(OUT, "index.ts"), "w") as f:
        f.write(index)
    total += len(index)
    print(f"wrote {len(files)} fixtures and index.ts to {os.path.normpath(OUT)}: {total / 1024:.0f} KiB in all")
    if total > 1_000_000:
        print("fixtures exceed 1 MB: make them smaller", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
