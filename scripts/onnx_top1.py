"""Top-1 of a Fashion-MNIST package's exported ONNX on the Fashion-MNIST test images, run by onnxruntime-node.

  /usr/bin/python3 scripts/onnx_top1.py model/alexnet-fmnist-64-v8            # all 10,000 test images
  /usr/bin/python3 scripts/onnx_top1.py model/alexnet-fmnist-64-v8 --count 500

Exports the package (training/onnx_int8.py, --form as scripts/export_onnx.py) into a temporary file,
preprocesses the test images as the manifest says (antialiased bilinear resize, /255, mean/std, grey into
every channel; training/data.py's evaluation transform), runs them through scripts/run-onnx.mjs in batches and
prints one JSON line: the ONNX top-1, the manifest's metrics.top1_int8 and their difference in points. Exits 1
if that difference exceeds --bound points. Needs onnxruntime-node (npm run bench:peers:install) and
Fashion-MNIST (Debian's dataset-fashion-mnist).
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from export_onnx import run_onnx  # noqa: E402

from training.data import FMNIST_DIR, load_fmnist, resize_gray  # noqa: E402
from training.onnx_int8 import FORMS, package_to_onnx  # noqa: E402
from training.package import load_package  # noqa: E402


def fmnist_inputs(manifest: dict, images: np.ndarray) -> np.ndarray:
    """[N, 28, 28] uint8 test images -> the package's preprocessed NHWC float32 inputs."""
    pre, size = manifest["preprocess"], manifest["input"]["height"]
    x = resize_gray(torch.from_numpy(images).float(), size) / float(pre["scale"])
    mean = torch.tensor(pre["mean"], dtype=torch.float32)
    std = torch.tensor(pre["std"], dtype=torch.float32)
    return ((x.unsqueeze(-1) - mean) / std).numpy().astype(np.float32)  # grey into every channel


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("package", help="a Fashion-MNIST package directory (e.g. model/alexnet-fmnist-64-v8)")
    p.add_argument("--count", type=int, default=10000, help="the first N test images (default: all 10,000)")
    p.add_argument("--form", choices=FORMS, default="cast", help="operator form of the export (default: cast)")
    p.add_argument(
        "--batch", type=int, default=100, help="images per onnxruntime session.run call (default: %(default)s)"
    )
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default: %(default)s)")
    p.add_argument(
        "--bound", type=float, default=0.1, help="allowed |ONNX top-1 - top1_int8| in points (default: %(default)s)"
    )
    p.add_argument(
        "--fmnist-dir", default=FMNIST_DIR, help="Fashion-MNIST's directory of .gz IDX files (default: %(default)s)"
    )
    args = p.parse_args()
    t0 = time.time()
    manifest, weights, _ = load_package(args.package)
    images, labels = load_fmnist(args.fmnist_dir, "test")
    images, labels = images[: args.count], labels[: args.count]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        onnx.save(package_to_onnx(manifest, weights, form=args.form), path)
        predictions = []
        for start in range(0, len(labels), 2000):  # ~100 MB of input per onnxruntime run at 64x64
            x = fmnist_inputs(manifest, images[start : start + 2000])
            predictions.append(run_onnx(path, x, batch=args.batch, threads=args.threads).argmax(1))
    top1 = float((np.concatenate(predictions) == labels).mean())
    want = manifest.get("metrics", {}).get("top1_int8")
    diff = None if want is None else 100 * (top1 - want)
    print(
        json.dumps(
            {
                "package": manifest["id"],
                "form": args.form,
                "images": len(labels),
                "top1_onnx": top1,
                "top1_int8_manifest": want,
                "difference_points": diff,
                "seconds": round(time.time() - t0, 1),
            }
        )
    )
    return 0 if diff is None or abs(diff) <= args.bound else 1


if __name__ == "__main__":
    sys.exit(main())
