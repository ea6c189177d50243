"""Out-of-distribution image sets built from what a Debian machine has, and the Worker's preprocessing in Python.

Three sets, each a list of (name, uint8 image [H, W] or [H, W, 3]), deterministic for a seed:

- `photographs`: scikit-image's bundled pictures (python3-skimage: the astronaut, Chelsea the cat, coffee, the
  rocket, coins, the moon, ...), whole, turned, mirrored and cropped at random scales and places.
- `synthetic`: flat colours, linear and radial gradients, noise (uniform, Gaussian, blurred, salt and pepper),
  stripes and checkerboards, at random sizes.
- `characters`: letters and digits drawn with the system's TrueType fonts (DejaVu, Liberation, Lato) white on
  black into 28x28, as Fashion-MNIST draws its garments: the hardest set, since it looks like the data.

`to_input(image, preprocess, size)` turns one into the model's NCHW input as the Worker does
(src/image/preprocess.ts): Pillow's convert("L") for "gray", the shorter side resized (antialiased bilinear),
a centre crop, / scale, (x - mean) / std.
"""

import glob
import math

import numpy as np
import torch

PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
FONT_GLOBS = (
    "/usr/share/fonts/truetype/dejavu/*.ttf",
    "/usr/share/fonts/truetype/liberation*/*.ttf",
    "/usr/share/fonts/truetype/lato/*.ttf",
)


def crop_offset(size: int, crop: int) -> int:
    """torchvision CenterCrop's offset, as src/image/preprocess.ts cropOffset (half to even)."""
    if crop > size:
        return -((crop - size) // 2)
    return round((size - crop) / 2)


def to_input(image: np.ndarray, preprocess: dict, size: tuple) -> torch.Tensor:
    """[C, H, W] float model input for a uint8 [H, W] or [H, W, 3] image, following the manifest's preprocess."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image))
    img = img.convert("L") if preprocess["color"] == "gray" else img.convert("RGB")
    w, h = img.size
    side = preprocess["resize"]["shorter_side"]
    rw, rh = (side, side * h // w) if w <= h else (side * w // h, side)
    img = img.resize((rw, rh), Image.BILINEAR)  # Pillow's resize is antialiased, as the Worker's
    ch, cw = size
    top, left = crop_offset(rh, ch), crop_offset(rw, cw)
    img = img.crop((left, top, left + cw, top + ch))  # outside the image: zeros, as torchvision pads
    x = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()) / float(preprocess["scale"])
    x = x.unsqueeze(0).expand(3, -1, -1) if x.dim() == 2 else x.permute(2, 0, 1)
    mean = torch.tensor(preprocess["mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(preprocess["std"], dtype=torch.float32).view(3, 1, 1)
    return ((x - mean) / std).contiguous()


def to_inputs(images: list, manifest: dict) -> torch.Tensor:
    size = (manifest["input"]["height"], manifest["input"]["width"])
    return torch.stack([to_input(img, manifest["preprocess"], size) for _, img in images])


def _uint8(a) -> np.ndarray:
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def photographs(seed: int = 0, crops: int = 10) -> list:
    """scikit-image's pictures: whole, turned 90/180/270 degrees, mirrored, and `crops` random crops each
    (a square or oblong of 15-80% of the shorter side, at a random place, turned by a random quarter)."""
    import skimage.data

    rng = np.random.default_rng(seed)
    out = []
    for name in PHOTOS:
        img = getattr(skimage.data, name)()
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 3:
            img = img[..., :3]
        out.append((f"{name}", img))
        for k in (1, 2, 3):
            out.append((f"{name}/rot{90 * k}", np.rot90(img, k)))
        out.append((f"{name}/mirror", img[:, ::-1]))
        h, w = img.shape[:2]
        for i in range(crops):
            ch = int(min(h, w) * rng.uniform(0.15, 0.8))
            cw = int(min(w, ch * rng.uniform(0.7, 1.4)))
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            out.append((f"{name}/crop{i}", np.rot90(img[top : top + ch, left : left + cw], int(rng.integers(0, 4)))))
    return [(n, np.ascontiguousarray(a)) for n, a in out]


def synthetic(seed: int = 0, per_kind: int = 40) -> list:
    """Flat colours, gradients, noise, stripes, checkerboards: `per_kind` of each kind, sides 28-256."""
    rng = np.random.default_rng(seed)
    out = []

    def side():
        return int(rng.integers(28, 257))

    def colour(rgb):
        return rng.integers(0, 256, 3 if rgb else 1).astype(np.float64)

    for i in range(per_kind):  # flat: every grey step, then random colours
        h, w = side(), side()
        rgb = i % 2 == 1
        c = colour(rgb) if i >= 16 else np.array([255.0 * i / 15])
        out.append((f"flat{i}", _uint8(np.broadcast_to(c, (h, w, 3) if rgb else (h, w)).copy())))
    for i in range(per_kind):  # gradients: linear at a random angle, or radial
        h, w = side(), side()
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        if i % 4 == 3:
            r = np.hypot(yy - rng.uniform(0, h), xx - rng.uniform(0, w))
            t = r / max(r.max(), 1)
        else:
            a = rng.uniform(0, 2 * math.pi)
            p = xx * math.cos(a) + yy * math.sin(a)
            t = (p - p.min()) / max(np.ptp(p), 1)
        rgb = i % 2 == 1
        c0, c1 = colour(rgb), colour(rgb)
        img = c0 + t[..., None] * (c1 - c0) if rgb else (c0 + t * (c1 - c0))
        out.append((f"gradient{i}", _uint8(img)))
    for i in range(per_kind):  # noise
        h, w = side(), side()
        kind = i % 4
        if kind == 0:
            img = rng.uniform(0, 256, (h, w))
        elif kind == 1:
            img = rng.normal(rng.uniform(40, 215), rng.uniform(10, 80), (h, w))
        elif kind == 2:  # blurred (low-frequency) noise: bilinear upscale of a small noise field
            small = torch.from_numpy(rng.uniform(0, 256, (1, 1, int(rng.integers(3, 12)), int(rng.integers(3, 12)))))
            img = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            img = img.numpy()
        else:
            img = np.where(rng.uniform(size=(h, w)) < rng.uniform(0.02, 0.3), 255.0, 0.0)
        out.append((f"noise{i}", _uint8(img)))
    for i in range(per_kind):  # stripes: sine or square waves at a random angle and period
        h, w = side(), side()
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        a = rng.choice([0, math.pi / 2, rng.uniform(0, math.pi)])
        period = rng.uniform(3, 40) * max(h, w) / 64
        wave = np.sin(2 * math.pi * (xx * math.cos(a) + yy * math.sin(a)) / period)
        wave = np.sign(wave) if i % 2 else wave
        lo, hi = sorted(rng.uniform(0, 256, 2))
        out.append((f"stripes{i}", _uint8(lo + (wave + 1) / 2 * (hi - lo))))
    for i in range(per_kind):  # checkerboards
        h, w = side(), side()
        cell = max(1, int(max(h, w) / 64 * rng.uniform(2, 20)))
        yy, xx = np.mgrid[0:h, 0:w]
        board = ((yy // cell + xx // cell) % 2).astype(np.float64)
        lo, hi = sorted(rng.uniform(0, 256, 2))
        out.append((f"checker{i}", _uint8(lo + board * (hi - lo))))
    return out


def fonts() -> list:
    found = sorted({p for g in FONT_GLOBS for p in glob.glob(g)})
    if not found:
        raise FileNotFoundError(f"no TrueType fonts at {', '.join(FONT_GLOBS)} (apt-get install fonts-dejavu-core)")
    return found


def characters(seed: int = 0, count: int = 300) -> list:
    """`count` letters and digits, white on black in 28x28 like Fashion-MNIST: a random character, font, size
    (14-26 px) and shift, with the glyph's box centred as the dataset centres its garments."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    paths = fonts()
    out = []
    for i in range(count):
        ch = CHARACTERS[i % len(CHARACTERS)] if i < len(CHARACTERS) else str(rng.choice(list(CHARACTERS)))
        path = paths[int(rng.integers(0, len(paths)))]
        font = ImageFont.truetype(path, int(rng.integers(14, 27)))
        img = Image.new("L", (28, 28), 0)
        draw = ImageDraw.Draw(img)
        left, top, right, bottom = draw.textbbox((0, 0), ch, font=font)
        dx, dy = rng.integers(-2, 3, 2)
        draw.text(
            ((28 - (right - left)) / 2 - left + dx, (28 - (bottom - top)) / 2 - top + dy), ch, fill=255, font=font
        )
        out.append((f"{ch}/{path.rsplit('/', 1)[-1]}", np.asarray(img)))
    return out


SETS = {"photographs": photographs, "synthetic": synthetic, "characters": characters}
