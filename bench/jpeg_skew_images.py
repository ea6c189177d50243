"""Images for bench/jpeg-skew.mjs: Fashion-MNIST test images as large JPEGs, and what training would see of them.

  /usr/bin/python3 bench/jpeg_skew_images.py OUT_DIR [--count 300] [--sizes 112,224,448,896,1792] [--size 64]

For each of the first COUNT test images and each SIZE it writes
  OUT_DIR/<size>/<index>.jpg        the 28x28 image upscaled to SIZExSIZE (PIL bicubic), as an RGB JPEG, quality 90
                                    (4:2:0, Pillow's default): what a client would upload;
  OUT_DIR/<size>/<index>-pil.png    that JPEG as the training side sees it: PIL's full decode, convert("L"),
                                    torchvision's Resize(shorter side)/CenterCrop on the PIL image, as uint8 (the
                                    step before ToTensor/Normalize), a lossless PNG at the model's input size;
  OUT_DIR/<size>/<index>-draft.png  the same through PIL's Image.draft(), which decodes at a reduced DCT scale
                                    like the Worker (the "train through the same scaled decode" alternative);
and OUT_DIR/index.json: {"sizes": [...], "count": N, "input": S, "labels": [...], "classes": [...]}.
The reference 28x28 originals go to OUT_DIR/orig/<index>.png.
"""

import argparse
import json
import os
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training.data import FMNIST_DIR, FMNIST_LABELS, load_fmnist  # noqa: E402


def training_view(img: Image.Image, size: int) -> Image.Image:
    """The manifest's preprocess as training applies it to a decoded PIL image, up to the uint8 step."""
    import torchvision.transforms as T

    return T.Compose([T.Resize(size), T.CenterCrop(size)])(img.convert("L"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="output directory (created)")
    parser.add_argument("--count", type=int, default=300, help="how many test images, from the first (default 300)")
    parser.add_argument("--sizes", default="112,224,448,896,1792", help="upscaled sizes in px, comma-separated")
    parser.add_argument("--size", type=int, default=64, help="the model's resize.shorter_side (default 64)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    images, labels = load_fmnist(FMNIST_DIR, "test")
    os.makedirs(os.path.join(args.out, "orig"), exist_ok=True)
    for size in sizes:
        os.makedirs(os.path.join(args.out, str(size)), exist_ok=True)
    for i in range(args.count):
        orig = Image.fromarray(images[i])
        orig.save(os.path.join(args.out, "orig", f"{i}.png"))
        for size in sizes:
            path = os.path.join(args.out, str(size), f"{i}.jpg")
            orig.resize((size, size), Image.BICUBIC).convert("RGB").save(path, quality=90)
            with Image.open(path) as full:
                full.load()
                training_view(full, args.size).save(os.path.join(args.out, str(size), f"{i}-pil.png"))
            with Image.open(path) as scaled:
                scaled.draft("RGB", (args.size, args.size))  # smallest DCT scale that keeps both sides >= size
                training_view(scaled, args.size).save(os.path.join(args.out, str(size), f"{i}-draft.png"))
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{args.count} images", flush=True)
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(
            {
                "sizes": sizes,
                "count": args.count,
                "input": args.size,
                "labels": [int(x) for x in labels[: args.count]],
                "classes": list(FMNIST_LABELS),
            },
            f,
        )


if __name__ == "__main__":
    main()
