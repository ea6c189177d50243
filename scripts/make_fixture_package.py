"""Write the Worker's test fixtures: two tiny model packages with every layer type of docs/model-package.md.

  /usr/bin/python3 scripts/make_fixture_package.py   # writes test/fixtures/tiny-package/ and tiny-gray-package/

Each is a 32x32x3 network with random seeded weights: conv2d 5x5/2 (padding 2) + ReLU, lrn, maxpool 3/2,
conv2d 3x3 with groups=2 + ReLU, maxpool 2/2, flatten (a 3x3x16 map, so the NHWC column order matters),
dense 32 + ReLU, dense 24 + ReLU, dense 10, softmax (lrn with a large alpha, see LRN_ALPHA); 4 samples with their
logits in the served arithmetic.
The last layer is scaled so the sample logits spread over a few units (top-1 is never a near tie).
Deterministic: running it again rewrites the same bytes.
"""

import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training.data import FMNIST_MEAN, FMNIST_STD, IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from training.package import export_package  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "fixtures")
SIZE = 32
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
LOGIT_STD = 2.0  # target spread of the sample logits
# The paper's alpha (1e-4) barely changes activations of this size; 0.05 (paper convention, so PyTorch gets
# 0.05 * 5) makes the sum term matter, so a Worker that mishandles alpha or the window fails the parity test.
LRN_ALPHA = 0.05


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.LocalResponseNorm(5, alpha=LRN_ALPHA * 5, beta=0.75, k=2.0),
            nn.MaxPool2d(3, 2),  # 16 -> 7
            nn.Conv2d(8, 16, 3, padding=1, groups=2),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),  # 7 -> 3
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 3 * 3, 32),
            nn.ReLU(),
            nn.Linear(32, 24),
            nn.ReLU(),
            nn.Linear(24, len(LABELS)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def make(model_id: str, color: str, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TinyNet().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen) - 0.5) * 0.2)
        if color == "gray":  # a gray image is one plane repeated into every channel
            xs = torch.randn(4, 1, SIZE, SIZE, generator=gen).expand(4, 3, SIZE, SIZE).contiguous()
            mean, std = [FMNIST_MEAN] * 3, [FMNIST_STD] * 3
        else:
            xs = torch.randn(4, 3, SIZE, SIZE, generator=gen)
            mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        last = model.classifier[-1]
        spread = model(xs).std().item()
        last.weight.mul_(LOGIT_STD / spread)
        last.bias.mul_(LOGIT_STD / spread)
    preprocess = {
        "color": color,
        "background": [0, 0, 0],
        "resize": {"shorter_side": SIZE, "filter": "bilinear"},
        "crop": {"mode": "center", "height": SIZE, "width": SIZE},
        "scale": 255,
        "mean": mean,
        "std": std,
    }
    out = os.path.join(ROOT, model_id)
    manifest = export_package(
        model,
        out,
        model_id,
        SIZE,
        preprocess,
        LABELS,
        xs,
        metrics={"dataset": "none: random weights, a test fixture"},
        training={
            "arch": "tiny-fixture",
            "epochs": 0,
            "seed": seed,
            "device": "cpu",
            "date": "2026-11-27",
            "torch": torch.__version__.split("+")[0],
            "note": "written by scripts/make_fixture_package.py",
        },
        overwrite=True,
        onnx=False,
    )
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"wrote {out} ({size} bytes, {len(manifest['layers'])} layers)")


if __name__ == "__main__":
    make("tiny-package", "rgb", seed=1)
    make("tiny-gray-package", "gray", seed=2)
