"""Write the demo's sample images: Fashion-MNIST test images and a few licensed photographs.

  /usr/bin/python3 scripts/make_sample_images.py

- samples/fmnist/<label>-<test index>.png: the first test image of six classes, 28x28 gray PNG
  (Fashion-MNIST, MIT licence, from Debian's dataset-fashion-mnist).
- samples/photos/*.jpg: scikit-image's astronaut, chelsea and coffee (public domain / CC0, from Debian's
  python3-skimage) re-encoded as JPEG, and matplotlib's grace_hopper.jpg (python-matplotlib-data) copied;
  sources and licences in samples/photos/LICENSES.md. These are outside what the default Fashion-MNIST
  model knows (samples/README.md says what they are for).
"""

import os
import shutil
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training.data import FMNIST_DIR, FMNIST_LABELS, load_fmnist  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")
FMNIST_CLASSES = ["Ankle boot", "T-shirt/top", "Trouser", "Bag", "Sneaker", "Dress"]
SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"
GRACE_HOPPER = "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg"

# Markdown table rows are one line each, however long: the line-length rule is waived for this string.
LICENSES = """# Sample photographs: sources and licences

| file | source (Debian package, path) | licence |
|---|---|---|
| astronaut.jpg | python3-skimage, `skimage/data/astronaut.png`: Eileen Collins, NASA Great Images database (https://flic.kr/p/r9qvLn) | public domain ("No known copyright restrictions, released into the public domain", scikit-image's `skimage.data.astronaut` docstring) |
| chelsea.jpg | python3-skimage, `skimage/data/chelsea.png`: Chelsea the cat, photograph by Stefan van der Walt | CC0 (`skimage.data.chelsea` docstring) |
| coffee.jpg | python3-skimage, `skimage/data/coffee.png`: coffee cup, photograph by Rachel Michetti, courtesy of Pikolo Espresso Bar | CC0 (`skimage.data.coffee` docstring) |
| grace_hopper.jpg | python-matplotlib-data, `mpl-data/sample_data/grace_hopper.jpg`: official U.S. Navy portrait of Commodore Grace M. Hopper | a work of the U.S. federal government, public domain in the United States; Debian ships it under matplotlib's licence (`/usr/share/doc/python-matplotlib-data/copyright`, `Files: *`) |

The PNGs were re-encoded as JPEG (quality 92) by `scripts/make_sample_images.py`; grace_hopper.jpg is copied as is.
"""  # noqa: E501


def slug(label: str) -> str:
    return label.lower().replace("/", "-").replace(" ", "-")


def main() -> None:
    fm = os.path.join(ROOT, "fmnist")
    os.makedirs(fm, exist_ok=True)
    images, labels = load_fmnist(FMNIST_DIR, "test")
    for name in FMNIST_CLASSES:
        i = int((labels == FMNIST_LABELS.index(name)).nonzero()[0][0])
        path = os.path.join(fm, f"{slug(name)}-{i}.png")
        Image.fromarray(images[i], mode="L").save(path)
        print(f"wrote {path}")
    ph = os.path.join(ROOT, "photos")
    os.makedirs(ph, exist_ok=True)
    for name in ("astronaut", "chelsea", "coffee"):
        path = os.path.join(ph, f"{name}.jpg")
        Image.open(os.path.join(SKIMAGE, f"{name}.png")).convert("RGB").save(path, quality=92)
        print(f"wrote {path}")
    shutil.copyfile(GRACE_HOPPER, os.path.join(ph, "grace_hopper.jpg"))
    with open(os.path.join(ph, "LICENSES.md"), "w") as f:
        f.write(LICENSES)
    print(f"wrote {ph}/grace_hopper.jpg and LICENSES.md")


if __name__ == "__main__":
    main()
