"""Write the Worker's fixtures for imported and fine-tuned AlexNets (test/engine/imported-packages.test.ts).

  /usr/bin/python3 scripts/make_onnx_fixture_packages.py     # writes test/fixtures/imported/<name>/

Every source is made here (no pretrained weights exist offline): narrow AlexNets (width 1/16) with seeded
random weights, small inputs, so the four packages stay under a megabyte together. The full-size paths (224
and 227) are tested in training/tests/. Packages, each made by scripts/train.py as a user would:
  onnx-tv       torchvision layout -> ONNX (torch.onnx.export) -> --from-onnx, 99x99 (a 2x2 feature map)
  onnx-caffe    the paper's two-tower AlexNet in Caffe's layout (conv1 unpadded, LRN k=1 alpha 1e-4 as in the
                ONNX zoo's bvlc_alexnet) -> ONNX with group=2 Conv and LRN nodes -> --from-onnx, 99x99
  finetune-pth  a torchvision-layout state_dict (.pth) fine-tuned 1 epoch on a tiny JPEG folder, 67x67
  finetune-onnx the Caffe-layout ONNX graph fine-tuned the same way
Beside each converted package, source-logits.safetensors holds the source PyTorch model's fp32 logits on the
package's sample inputs: the Worker's int8 answer is checked against the framework the graph came from.
Deterministic: running it again rewrites the same bytes.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "training", "tests"))
from onnx_sources import caffe_alexnet, tv_alexnet  # noqa: E402
from tiny_images import make_image_folder  # noqa: E402
from training import safetensors_io  # noqa: E402
from training.onnx_export import export_onnx  # noqa: E402
from training.package import load_package  # noqa: E402

OUT = os.path.join(ROOT, "test", "fixtures", "imported")
WIDTH, CONVERT_SIZE, FINETUNE_SIZE = 0.0625, 99, 67  # 67: the smallest side unpadded conv1 allows
LABELS = [f"class-{i}" for i in range(10)]


def train(*args):
    cmd = [
        sys.executable,
        os.path.join(ROOT, "scripts", "train.py"),
        "--threads",
        "2",
        "--samples",
        "2",
        "--no-onnx",
        *args,
    ]
    subprocess.run(cmd, check=True, cwd=ROOT)


def write_source_logits(package: str, model: torch.nn.Module) -> None:
    _, _, samples = load_package(package)
    x = torch.from_numpy(samples["inputs"].copy()).permute(0, 3, 1, 2)
    with torch.no_grad():
        logits = model.eval()(x)
    safetensors_io.write(
        os.path.join(package, "source-logits.safetensors"),
        {"logits": logits},
        {"source": "the PyTorch model the ONNX graph was exported from, fp32"},
    )


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    with tempfile.TemporaryDirectory() as tmp:
        labels = os.path.join(tmp, "labels.txt")
        with open(labels, "w") as f:
            f.write("\n".join(LABELS) + "\n")
        tv, caffe = tv_alexnet(WIDTH, CONVERT_SIZE, len(LABELS)), caffe_alexnet(WIDTH, CONVERT_SIZE, len(LABELS))
        for name, model in (("onnx-tv", tv), ("onnx-caffe", caffe)):
            graph = os.path.join(tmp, name + ".onnx")
            export_onnx(model, graph, CONVERT_SIZE, softmax=name == "onnx-caffe")
            train("--from-onnx", graph, "--labels", labels, "--export-dir", os.path.join(OUT, name))
            write_source_logits(os.path.join(OUT, name), model)
        images = make_image_folder(os.path.join(tmp, "images"))
        pth = os.path.join(tmp, "alexnet.pth")
        torch.save(tv.state_dict(), pth)
        for name, source in (("finetune-pth", pth), ("finetune-onnx", os.path.join(tmp, "onnx-caffe.onnx"))):
            train(
                "--dataset",
                images,
                "--init",
                source,
                "--input-size",
                str(FINETUNE_SIZE),
                "--epochs",
                "1",
                "--batch-size",
                "10",
                "--workers",
                "0",
                "--out",
                os.path.join(tmp, "run-" + name),
                "--export-dir",
                os.path.join(OUT, name),
            )
            for extra in (".classes.csv", ".confusion.csv", ".confusion.png"):
                os.remove(os.path.join(OUT, name + extra))  # the reports are tested in Python, not needed here


if __name__ == "__main__":
    main()
