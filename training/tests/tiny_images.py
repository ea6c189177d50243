"""A tiny image folder in the ImageNet layout, made in the test: one colour and shape per class, as JPEGs."""

import os
import random

CLASSES = (("red-circle", (220, 40, 40)), ("green-square", (40, 180, 60)), ("blue-triangle", (50, 70, 220)))


def make_image_folder(
    root: str, train_per_class: int = 10, val_per_class: int = 4, size: int = 96, seed: int = 0
) -> str:
    """root/{train,val}/<class>/NN.jpg: a shape of the class colour at a random place and size on grey noise."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name, colour in CLASSES:
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                img = Image.new("RGB", (size, size), tuple(rng.randint(90, 150) for _ in range(3)))
                draw = ImageDraw.Draw(img)
                r = rng.randint(size // 5, size // 3)
                cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
                if name.endswith("circle"):
                    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
                elif name.endswith("square"):
                    draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
                else:
                    draw.polygon(((cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)), fill=colour)
                img.save(os.path.join(folder, f"{i:02d}.jpg"), quality=90)
    return root
