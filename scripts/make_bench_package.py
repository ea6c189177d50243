"""Write a full-size AlexNet package with random weights, for the Worker's benchmarks (not committed, ~60 MB).

  /usr/bin/python3 scripts/make_bench_package.py bench/.packages/alexnet-random-224

The paper's one-tower AlexNet at 224x224x3 with 1000 classes (62.4 M parameters), seeded He-normal weights,
written by the same exporter as a trained model (training/package.py), with 2 random sample inputs and their
served-arithmetic logits, the 1000 ImageNet labels, and `<dir>.onnx` beside it unless --no-onnx. Overwrites.
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training.data import folder_preprocess  # noqa: E402
from training.model import build_model, count_parameters  # noqa: E402
from training.package import export_package, imagenet_labels  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="package directory; its name is the package id (e.g. alexnet-random-224)")
    p.add_argument("--seed", type=int, default=0, help="weight and sample seed")
    p.add_argument("--two-tower", action="store_true", help="the paper's groups=2 in conv2, conv4, conv5")
    p.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip <dir>.onnx (fp32, ~250 MB)")
    args = p.parse_args()
    t0 = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    model = build_model("alexnet", 1000, 224, two_tower=args.two_tower).eval()
    xs = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed + 1))
    model_id = os.path.basename(os.path.normpath(args.out))
    export_package(
        model,
        args.out,
        model_id,
        224,
        folder_preprocess(224),
        imagenet_labels(),
        xs,
        metrics={"dataset": "none: random weights, for benchmarks"},
        training={
            "arch": "alexnet",
            "two_tower": args.two_tower,
            "epochs": 0,
            "seed": args.seed,
            "device": "cpu",
            "torch": torch.__version__.split("+")[0],
            "note": "random weights written by scripts/make_bench_package.py",
        },
        overwrite=True,
        onnx=args.onnx,
    )
    size = os.path.getsize(os.path.join(args.out, "weights.safetensors"))
    print(
        f"wrote {args.out}: {count_parameters(model):,} parameters, weights {size / 2**20:.1f} MiB, "
        f"{time.time() - t0:.1f}s"
    )


if __name__ == "__main__":
    main()
