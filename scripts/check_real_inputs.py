r"""Send a running Worker the kinds of pictures people send, and check each gets the small original's answer.

  npm start                                                   # in one terminal
  /usr/bin/python3 scripts/check_real_inputs.py --count 3     # in another

Each of the first COUNT Fashion-MNIST test images (the seeded sample) is blown up into every kind below, so the
right answer is known: the Worker's top-1 for the 28x28 PNG as the dataset holds it. A kind agrees when every
sample gets that same top-1 with 200. The pictures are shaped like real ones: a phone photo is 4032x3024 with
sensor-like noise at JPEG quality 92 (4-6 MB), a screenshot is flat (small file), a portrait phone photo is stored
landscape with EXIF orientation 6, as phones store them.

  phone-12mp-baseline     4032x3024 baseline JPEG, quality 92, noise           (4-6 MB)
  phone-12mp-portrait     the same stored 4032x3024 with EXIF orientation 6 (displayed 3024x4032)
  phone-12mp-progressive  4032x3024 progressive JPEG, quality 92
  web-progressive         1920x1440 progressive JPEG, quality 80 (mozjpeg's default form)
  camera-48mp             8000x6000 baseline JPEG, quality 90, noise           (10-15 MB)
  screenshot-phone        1170x2532 PNG, flat
  screenshot-4k           3840x2160 PNG, flat
  screenshot-8k           7680x4320 PNG, flat
  png-16bit-grey          2048x2048 16-bit greyscale PNG
  webp-lossless-1080p     1920x1080 lossless WebP
  json-base64-phone       the phone photo as Workers AI's JSON: {"image": "<base64>"}
  multipart-4-phone       four phone photos in one multipart/form-data batch

Prints one line a kind (body size, status, agreement, median seconds from send to answer) and exits 1 if a kind
does not agree, 2 on a usage or connection error. Needs PIL and numpy (Debian's).
"""

import argparse
import base64
import io
import json
import os
import random
import statistics
import sys
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training.data import FMNIST_DIR, load_fmnist  # noqa: E402

# Sensor-like noise (standard deviation in 8-bit levels): at quality 92 a 12 MP photo then weighs 4-6 MB, as
# phone photos do; a clean synthetic picture would compress to a fraction of that.
PHONE_NOISE = 12.0


def canvas(img: np.ndarray, width: int, height: int, noise: float, seed: int) -> Image.Image:
    """The 28x28 item centred on a black width x height RGB canvas, as tall as the shorter side, with noise."""
    side = min(width, height)
    item = Image.fromarray(img, mode="L").resize((side, side), Image.BICUBIC).convert("RGB")
    out = Image.new("RGB", (width, height))
    out.paste(item, ((width - side) // 2, (height - side) // 2))
    if noise > 0:
        rng = np.random.default_rng(seed)
        pixels = np.asarray(out, dtype=np.float32)
        pixels += rng.normal(0, noise, pixels.shape).astype(np.float32)
        out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return out


def jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def portrait(img: np.ndarray, seed: int) -> bytes:
    """A portrait photo as a phone stores it: the pixels turned a quarter to landscape, EXIF orientation 6."""
    shown = canvas(img, 3024, 4032, PHONE_NOISE, seed)
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # displayed = stored turned 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg(stored, quality=92, exif=exif.tobytes())


def make(kind: str, img: np.ndarray, seed: int) -> tuple:
    """(body, content type) of one sample in the named kind."""
    if kind == "phone-12mp-baseline" or kind == "json-base64-phone":
        body = jpeg(canvas(img, 4032, 3024, PHONE_NOISE, seed), quality=92)
        if kind == "json-base64-phone":
            return json.dumps({"image": base64.b64encode(body).decode()}).encode(), "application/json"
        return body, "image/jpeg"
    if kind == "phone-12mp-portrait":
        return portrait(img, seed), "image/jpeg"
    if kind == "phone-12mp-progressive":
        return jpeg(canvas(img, 4032, 3024, PHONE_NOISE, seed), quality=92, progressive=True), "image/jpeg"
    if kind == "web-progressive":
        return jpeg(canvas(img, 1920, 1440, 1.5, seed), quality=80, progressive=True), "image/jpeg"
    if kind == "camera-48mp":
        return jpeg(canvas(img, 8000, 6000, PHONE_NOISE, seed), quality=90), "image/jpeg"
    buffer = io.BytesIO()
    if kind in ("screenshot-phone", "screenshot-4k", "screenshot-8k"):
        size = {"screenshot-phone": (1170, 2532), "screenshot-4k": (3840, 2160), "screenshot-8k": (7680, 4320)}[kind]
        canvas(img, *size, 0.0, seed).save(buffer, format="PNG", optimize=False)
        return buffer.getvalue(), "image/png"
    if kind == "png-16bit-grey":
        grey = np.asarray(canvas(img, 2048, 2048, 0.0, seed).convert("L"), dtype=np.uint16) * 257
        Image.fromarray(grey.astype(np.uint16), mode="I;16").save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"
    if kind == "webp-lossless-1080p":
        canvas(img, 1920, 1080, 0.0, seed).save(buffer, format="WEBP", lossless=True)
        return buffer.getvalue(), "image/webp"
    raise ValueError(kind)


KINDS = [
    "phone-12mp-baseline",
    "phone-12mp-portrait",
    "phone-12mp-progressive",
    "web-progressive",
    "camera-48mp",
    "screenshot-phone",
    "screenshot-4k",
    "screenshot-8k",
    "png-16bit-grey",
    "webp-lossless-1080p",
    "json-base64-phone",
    "multipart-4-phone",
]


def post(url: str, body: bytes, content_type: str) -> tuple:
    """(status, JSON answer, seconds); a 429 is waited out as its Retry-After says."""
    for _ in range(10):
        request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": content_type})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read()), time.perf_counter() - started
        except urllib.error.HTTPError as error:
            if error.code == 429:
                time.sleep(float(error.headers.get("retry-after", "5")))
                continue
            return error.code, json.loads(error.read() or b"{}"), time.perf_counter() - started
    raise SystemExit("check_real_inputs: still rate limited after 10 tries")


def multipart(parts: list) -> tuple:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for i, data in enumerate(parts):
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{i}.jpg"\r\n'.encode())
        out.write(b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def top1(answer: dict) -> list:
    if "results" in answer:
        return [r["predictions"][0]["label"] for r in answer["results"]]
    return [answer["predictions"][0]["label"]]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8787", help="the running Worker (default: %(default)s)")
    p.add_argument("--count", type=int, default=3, help="test images blown up into every kind (default: %(default)s)")
    p.add_argument("--seed", type=int, default=20261203, help="which test images (default: %(default)s)")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to send (default: all)")
    p.add_argument("--fmnist-dir", default=FMNIST_DIR, help="Fashion-MNIST IDX files (default: %(default)s)")
    args = p.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or args.count < 1:
        p.error(f"unknown kinds {unknown}" if unknown else "--count must be at least 1")
    images, _ = load_fmnist(args.fmnist_dir, "test")
    picks = random.Random(args.seed).sample(range(len(images)), args.count)
    url = args.url.rstrip("/") + "/v1/classify"
    try:
        expected = {}
        for i in picks:
            buffer = io.BytesIO()
            Image.fromarray(np.asarray(images[i]), mode="L").save(buffer, format="PNG")
            status, answer, _ = post(url, buffer.getvalue(), "image/png")
            if status != 200:
                raise SystemExit(f"check_real_inputs: the 28x28 original of test image {i} got {status}: {answer}")
            expected[i] = top1(answer)[0]
        failed = 0
        print(f"{'kind':26} {'bytes':>12} {'status':>8} {'agree':>7} {'median s':>9}")
        for kind in kinds:
            statuses, agree, seconds, sizes = [], 0, [], []
            for i in picks:
                img = np.asarray(images[i])
                if kind == "multipart-4-phone":
                    parts = [make("phone-12mp-baseline", img, args.seed + j) for j in range(4)]
                    body, content_type = multipart([data for data, _ in parts])
                else:
                    body, content_type = make(kind, img, args.seed + i)
                status, answer, took = post(url, body, content_type)
                statuses.append(status)
                sizes.append(len(body))
                seconds.append(took)
                if status == 200 and all(label == expected[i] for label in top1(answer)):
                    agree += 1
                elif status != 200:
                    print(f"  {kind} image {i}: {status} {answer.get('error', answer)}")
            ok = agree == len(picks)
            failed += not ok
            shown = ",".join(sorted({str(s) for s in statuses}))
            median_s = statistics.median(seconds)
            print(f"{kind:26} {statistics.median(sizes):12.0f} {shown:>8} {agree:>3}/{len(picks):<3} {median_s:9.3f}")
        return 1 if failed else 0
    except urllib.error.URLError as error:
        print(f"check_real_inputs: cannot reach {url}: {error.reason} (is `npm start` running?)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
