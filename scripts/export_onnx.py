"""Export an int8 model package as one ONNX graph that onnxruntime runs natively, with the Worker's arithmetic.

  /usr/bin/python3 scripts/export_onnx.py model/alexnet-fmnist-64-v8 --out alexnet-fmnist-64-v8.int8.onnx

The graph's weights are the package's int8 tensors with their per-channel scales, and it computes what the
Worker computes (its 7-bit convolution input codes and int16 dense codes, summed against the int8 weights:
see training/onnx_int8.py and docs/onnx-export.md for the operator forms and why `cast` is the default).
Input `input`: preprocessed float32 NHWC [batch, height, width, channels] as the package's samples hold them
(--layout nchw for [batch, channels, height, width]); outputs `logits` and `probs`. The package's files are
checked against their lengths and SHA-256 first, and the exported graph is run on the package's own samples
with onnxruntime-node when it is installed (npm run
bench:peers:install), reporting the relative L2 distance from the Worker's sample logits.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from training.onnx_int8 import FORMS, package_to_onnx  # noqa: E402
from training.package import load_package  # noqa: E402

RUN_ONNX = os.path.join(ROOT, "scripts", "run-onnx.mjs")


def run_onnx(path: str, inputs: np.ndarray, output: str = "logits", batch: int = 64, threads: int = 1) -> np.ndarray:
    """Run an ONNX graph on onnxruntime-node through scripts/run-onnx.mjs; raises FileNotFoundError when node
    or onnxruntime-node is missing (exit 3), RuntimeError on any other failure."""
    inputs = np.ascontiguousarray(inputs, dtype="<f4")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "input.f32"), os.path.join(tmp, "output.f32")
        inputs.tofile(src)
        cmd = ["node", RUN_ONNX, path, src, "--shape", ",".join(map(str, inputs.shape)), "--out", dst]
        cmd += ["--output", output, "--batch", str(batch), "--threads", str(threads)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"node is not on PATH ({e})") from e
        if proc.returncode == 3:
            raise FileNotFoundError(proc.stderr.strip())
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return np.fromfile(dst, dtype="<f4").reshape(inputs.shape[0], -1)


def relative_l2(got: np.ndarray, want: np.ndarray) -> float:
    """||got - want|| / ||want|| over all logits."""
    return float(np.linalg.norm(got.astype(np.float64) - want) / np.linalg.norm(want.astype(np.float64)))


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("package", help="package directory (manifest.json, weights.safetensors, samples.safetensors)")
    p.add_argument("--out", help="the .onnx file to write (default: <package dir>.int8.onnx beside the package)")
    p.add_argument(
        "--form",
        choices=FORMS,
        default="cast",
        help="operator form: cast (fastest) or integer (ConvInteger, int8 in memory) give the Worker's answers; "
        "qdq and dynamic are onnxruntime's usual forms, up to 1.6%% away, docs/onnx-export.md (default: %(default)s)",
    )
    p.add_argument(
        "--layout",
        choices=("nhwc", "nchw"),
        default="nhwc",
        help="input layout: nhwc as the Worker and the samples take it, or nchw (PyTorch's) (default: %(default)s)",
    )
    p.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip running the package's samples through onnxruntime-node after writing",
    )
    args = p.parse_args()
    manifest, weights, samples = load_package(args.package)
    out = args.out or os.path.normpath(args.package) + ".int8.onnx"
    model = package_to_onnx(manifest, weights, form=args.form, layout=args.layout)
    onnx.save(model, out)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB, {args.form}, {args.layout.upper()} input)")
    if not args.check:
        return 0
    inputs = samples["inputs"]
    if args.layout == "nchw":
        inputs = inputs.transpose(0, 3, 1, 2)
    try:
        got = run_onnx(out, inputs)
    except FileNotFoundError as e:
        print(f"not checked: onnxruntime-node is not installed (npm run bench:peers:install): {e}")
        return 0
    want = samples["logits"]
    same_top1 = int((got.argmax(1) == want.argmax(1)).sum())
    print(
        json.dumps(
            {
                "samples": len(want),
                "relative_l2_vs_worker_logits": relative_l2(got, want),
                "same_top1": same_top1,
            }
        )
    )
    return 0 if same_top1 == len(want) else 1


if __name__ == "__main__":
    sys.exit(main())
