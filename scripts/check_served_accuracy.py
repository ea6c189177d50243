r"""Check a running Worker's answers against its manifest: a seeded sample of Fashion-MNIST test images, each
sent in five encodings, and the top-1 of each encoding compared with the package's own int8 top-1.

  npm start                                   # in one terminal
  /usr/bin/python3 scripts/check_served_accuracy.py --count 400   # in another

The five encodings (what a client may send for the same picture; each takes another path through the
Worker's image pipeline):
  png             the 28x28 grey test image as a PNG, as the dataset holds it (the training path exactly)
  png-rgb-224     upscaled to 224x224 RGB (bilinear) as a PNG: RGB-to-grey and a downscaling resize
  jpeg            the 28x28 grey image as a baseline JPEG, quality 95
  jpeg-rgb-448    upscaled to 448x448 RGB as a JPEG, quality 90: decoded at a reduced DCT scale
  webp-rgb-448    the same as a lossy WebP, quality 90: libwebp scales it while it decodes
Images go as multipart batches of 8 (the API's batch limit), so the sample needs few requests; a 429 is
waited out as its Retry-After says. The test images were never trained on (Fashion-MNIST's own split).

An encoding agrees when its top-1 lies within the 95% binomial interval of the manifest's `top1_int8` for a
sample of this size (measured on all 10,000 images, so the sample's own error is the only spread expected).
Exits 1 if any encoding does not agree, 2 on a usage or connection error. Needs PIL and numpy (Debian's).
"""

import argparse
import io
import json
import math
import os
import random
import sys
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training.data import FMNIST_DIR, FMNIST_LABELS, load_fmnist  # noqa: E402

BATCH = 8  # MAX_IMAGES_PER_REQUEST in src/config.ts
Z95 = 1.96


def encode(img: np.ndarray, kind: str) -> tuple:
    """(bytes, content type) of one 28x28 uint8 image in the named encoding."""
    pil = Image.fromarray(img, mode="L")
    out = io.BytesIO()
    if kind == "png":
        pil.save(out, format="PNG")
    elif kind == "png-rgb-224":
        pil.convert("RGB").resize((224, 224), Image.BILINEAR).save(out, format="PNG")
    elif kind == "jpeg":
        pil.save(out, format="JPEG", quality=95)
    elif kind == "jpeg-rgb-448":
        pil.convert("RGB").resize((448, 448), Image.BILINEAR).save(out, format="JPEG", quality=90)
    elif kind == "webp-rgb-448":
        pil.convert("RGB").resize((448, 448), Image.BILINEAR).save(out, format="WEBP", quality=90)
    else:
        raise ValueError(kind)
    return out.getvalue(), "image/" + kind.split("-")[0]


ENCODINGS = ("png", "png-rgb-224", "jpeg", "jpeg-rgb-448", "webp-rgb-448")


def multipart(parts: list) -> tuple:
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for i, (data, ctype) in enumerate(parts):
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{i}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n".encode()
        )
        body.write(data)
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


def request(url: str, data=None, ctype=None, key="", tries=20):
    """JSON answer of one request; waits out 429/503 with their Retry-After."""
    headers = {"Content-Type": ctype} if ctype else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    for _ in range(tries):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=120) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code not in (429, 503):
                raise SystemExit(f"error: {url} answered {e.code}: {e.read()[:300].decode(errors='replace')}") from e
            wait = float(e.headers.get("Retry-After") or 2)
            print(f"  {e.code}, waiting {wait:.0f} s as Retry-After says", flush=True)
            time.sleep(wait)
    raise SystemExit(f"error: {url} kept answering 429/503")


def interval(p: float, n: int) -> tuple:
    half = Z95 * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--url", default="http://127.0.0.1:8787", help="the Worker (default: npm start's)")
    ap.add_argument("--count", type=int, default=400, help="test images in the sample (default 400)")
    ap.add_argument("--seed", type=int, default=20261202, help="which test images (default 20261202)")
    ap.add_argument(
        "--api-key",
        default=os.environ.get("ALEXNET_EDGE_API_KEY", ""),
        help="Bearer key, if the Worker has API_KEYS (default: $ALEXNET_EDGE_API_KEY, else none)",
    )
    ap.add_argument("--fmnist-dir", default=FMNIST_DIR, help=f"Fashion-MNIST IDX files (default {FMNIST_DIR})")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    if args.count < 1:
        ap.error("--count must be positive")
    try:
        model = request(args.url.rstrip("/") + "/v1/models", key=args.api_key)
    except urllib.error.URLError as e:
        print(f"error: no Worker at {args.url} ({e.reason}); start one with npm start", file=sys.stderr)
        return 2
    manifest_top1 = (model.get("metrics") or {}).get("top1_int8")
    if model.get("labels") != FMNIST_LABELS or manifest_top1 is None:
        print(
            f"error: the served model {model.get('id')} is not a Fashion-MNIST model with a measured top1_int8",
            file=sys.stderr,
        )
        return 2
    images, labels = load_fmnist(args.fmnist_dir, "test")
    picked = random.Random(args.seed).sample(range(len(labels)), min(args.count, len(labels)))
    top1 = {k: [] for k in ENCODINGS}
    started = time.time()
    for kind in ENCODINGS:
        for at in range(0, len(picked), BATCH):
            chunk = picked[at : at + BATCH]
            body, ctype = multipart([encode(images[i], kind) for i in chunk])
            answer = request(args.url.rstrip("/") + "/v1/classify?top_k=1", body, ctype, args.api_key)
            for _, result in zip(chunk, answer["results"], strict=True):  # one result per image sent
                top1[kind].append(result["predictions"][0]["label"])
        if not args.json:
            print(f"  {kind}: {len(picked)} images sent ({time.time() - started:.0f} s)", flush=True)
    truth = [FMNIST_LABELS[labels[i]] for i in picked]
    low, high = interval(manifest_top1, len(picked))
    rows = {}
    for kind in ENCODINGS:
        acc = sum(p == t for p, t in zip(top1[kind], truth, strict=True)) / len(picked)
        same = sum(p == q for p, q in zip(top1[kind], top1["png"], strict=True)) / len(picked)
        rows[kind] = {"top1": round(acc, 4), "same_top1_as_png": round(same, 4), "agrees": low <= acc <= high}
    result = {
        "model": model.get("id"),
        "manifest_top1_int8": manifest_top1,
        "count": len(picked),
        "seed": args.seed,
        "interval_95": [round(low, 4), round(high, 4)],
        "encodings": rows,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{model.get('id')}: manifest int8 top-1 {manifest_top1:.4f} on 10,000; on this sample of "
            f"{len(picked)} the 95% interval is {low:.4f}-{high:.4f}"
        )
        for kind, r in rows.items():
            print(
                f"  {kind:14s} top-1 {r['top1']:.4f}  same top-1 as png {r['same_top1_as_png']:.4f}  "
                f"{'agrees' if r['agrees'] else 'DOES NOT AGREE'}"
            )
    return 0 if all(r["agrees"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
