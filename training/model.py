"""The AlexNet family, each with a torchvision-like `features` / `classifier` split.

- `alexnet`: Krizhevsky, Sutskever, Hinton 2012 ("ImageNet Classification with Deep Convolutional Neural
  Networks", NeurIPS), as one tower or with the paper's two-tower grouping of conv2, conv4 and conv5.
- `alexnet-bn`: the Keras tutorial variant (valid padding, 2x2 pools, 11x11 conv2, batch normalisation after
  each linear layer, dropout 0.4). BN folds away at export.
- `alexnet-tv`: torchvision's layout (64-192-384-256-256) so torchvision's ImageNet weights load by key.

The first dense layer's in_features follows the feature map of the chosen input size (a dummy forward).
"""

import torch
import torch.nn as nn

ARCHS = ("alexnet", "alexnet-bn", "alexnet-tv")

# Paper section 3.3: k=2, n=5, alpha=1e-4, beta=0.75 with a_c / (k + alpha * sum a^2)^beta.
# torch.nn.LocalResponseNorm computes alpha / n * sum, so it gets alpha * n to match the paper.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


def paper_lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)


def _scaled(n: int, width: float) -> int:
    """Channel count times the width multiplier, kept even so two towers split evenly."""
    return max(2, int(round(n * width / 2)) * 2)


def he_init(model: nn.Module) -> None:
    """He (kaiming) normal init, zero biases, a small last layer. The paper's N(0, 0.01) with biases of 1
    needs many epochs before the loss moves at all; He init starts learning in the first hundred steps."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in layers:
        nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(m.bias)
    nn.init.normal_(layers[-1].weight, std=0.01)


def feature_shape(features: nn.Module, input_size: int, in_channels: int = 3) -> tuple:
    """(C, H, W) of the feature map for a square input, from a dummy forward."""
    with torch.no_grad():
        try:
            out = features(torch.zeros(1, in_channels, input_size, input_size))
        except RuntimeError as e:
            raise ValueError(f"input size {input_size} is too small for this architecture: {e}") from e
    return tuple(out.shape[1:])


class FeaturesThenClassifier(nn.Module):
    """`features` (convolutions) -> flatten -> `classifier` (dense): the shape of every AlexNet here."""

    features: nn.Sequential
    classifier: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def dropout_classifier(
    in_features: int, hidden: int, num_classes: int, dropout: float, batch_norm: bool = False
) -> nn.Sequential:
    """The paper's fc6-fc7-fc8 with dropout before fc6 and fc7; without batch_norm, indices 1, 4, 6 are
    torchvision's keys. batch_norm adds a (training-only, folded at export) BatchNorm before each hidden ReLU."""
    bn = (lambda: [nn.BatchNorm1d(hidden)]) if batch_norm else (lambda: [])
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_features, hidden),
        *bn(),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        *bn(),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


class AlexNet(FeaturesThenClassifier):
    """The paper's AlexNet; `two_tower` groups conv2, conv4, conv5 into 2 (the paper's GPU split).

    `batch_norm` puts a BatchNorm between every conv or hidden dense layer and its ReLU, for training only:
    in eval mode a BatchNorm is an affine map per channel, which the exporter folds exactly into the layer
    before it (training/quantize.py, fold_bn), so the package holds the paper's layers and nothing else. It
    lets SGD take steps ~5x larger without diverging (Ioffe and Szegedy 2015, arXiv:1502.03167), which is
    what a CPU's few epochs need.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        input_size: int = 224,
        two_tower: bool = False,
        dropout: float = 0.5,
        width: float = 1.0,
        hidden: int = 4096,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        g = 2 if two_tower else 1
        c1, c2, c3, c4, c5 = (_scaled(n, width) for n in (96, 256, 384, 384, 256))
        h = _scaled(hidden, width)

        def conv(cin, cout, **kw):
            bn = [nn.BatchNorm2d(cout)] if batch_norm else []
            return [nn.Conv2d(cin, cout, **kw), *bn, nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *conv(3, c1, kernel_size=11, stride=4, padding=2),
            paper_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            *conv(c1, c2, kernel_size=5, padding=2, groups=g),
            paper_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            *conv(c2, c3, kernel_size=3, padding=1),
            *conv(c3, c4, kernel_size=3, padding=1, groups=g),
            *conv(c4, c5, kernel_size=3, padding=1, groups=g),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        c, fh, fw = feature_shape(self.features, input_size)
        self.classifier = dropout_classifier(c * fh * fw, h, num_classes, dropout, batch_norm)
        he_init(self)


class AlexNetBN(FeaturesThenClassifier):
    """Keras-tutorial AlexNet: valid padding, 2x2 pools, 11x11 conv2, BN after every conv and hidden dense."""

    def __init__(
        self,
        num_classes: int = 1000,
        input_size: int = 224,
        dropout: float = 0.4,
        width: float = 1.0,
        hidden: int = 4096,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (_scaled(n, width) for n in (96, 256, 384, 384, 256))
        h = _scaled(hidden, width)

        def block(cin, cout, k, s):
            return [nn.Conv2d(cin, cout, kernel_size=k, stride=s), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(3, c1, 11, 4),
            nn.MaxPool2d(2, 2),
            *block(c1, c2, 11, 1),
            nn.MaxPool2d(2, 2),
            *block(c2, c3, 3, 1),
            *block(c3, c4, 3, 1),
            *block(c4, c5, 3, 1),
            nn.MaxPool2d(2, 2),
        )
        c, fh, fw = feature_shape(self.features, input_size)
        self.classifier = nn.Sequential(
            nn.Linear(c * fh * fw, h),
            nn.BatchNorm1d(h),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(h, h),
            nn.BatchNorm1d(h),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(h, num_classes),
        )
        he_init(self)


class AlexNetTV(FeaturesThenClassifier):
    """torchvision.models.alexnet's layout and state_dict keys, without the adaptive pool.

    torchvision's AdaptiveAvgPool2d((6, 6)) is the identity at 224x224 (the feature map is already 6x6), so
    dropping it changes nothing there; at other sizes fc6 follows the feature map instead.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        input_size: int = 224,
        dropout: float = 0.5,
        width: float = 1.0,
        hidden: int = 4096,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (_scaled(n, width) for n in (64, 192, 384, 256, 256))
        h = _scaled(hidden, width)
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        c, fh, fw = feature_shape(self.features, input_size)
        self.classifier = dropout_classifier(c * fh * fw, h, num_classes, dropout)


def build_model(
    arch: str,
    num_classes: int,
    input_size: int,
    two_tower: bool = False,
    width: float = 1.0,
    dropout: float = -1.0,
    batch_norm: bool = False,
) -> nn.Module:
    """One constructor for the CLI; dropout < 0 keeps each architecture's own default."""
    kw = {"num_classes": num_classes, "input_size": input_size, "width": width}
    if dropout >= 0:
        kw["dropout"] = dropout
    if arch == "alexnet":
        return AlexNet(two_tower=two_tower, batch_norm=batch_norm, **kw)
    if two_tower:
        raise ValueError(f"--two-tower applies to arch 'alexnet' only, not {arch!r}")
    if batch_norm:
        raise ValueError(f"--batch-norm applies to arch 'alexnet' only (alexnet-bn has its own), not {arch!r}")
    if arch == "alexnet-bn":
        return AlexNetBN(**kw)
    if arch == "alexnet-tv":
        return AlexNetTV(**kw)
    raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
