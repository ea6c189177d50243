"""Source models for the import tests (no pretrained weights exist offline): seeded random AlexNets in the
two layouts that circulate as ONNX, torchvision's and Caffe's (the ONNX model zoo's bvlc_alexnet)."""

import torch

from training.model import AlexNet, AlexNetTV


def tv_alexnet(width: float, size: int, classes: int, seed: int = 0) -> torch.nn.Module:
    """torchvision's layout (state_dict keys included), no adaptive pool: 64-192-384-256-256 times width."""
    torch.manual_seed(seed)
    return spread_logits(AlexNetTV(classes, size, width=width).eval())


def caffe_alexnet(width: float, size: int, classes: int, seed: int = 0) -> torch.nn.Module:
    """The paper's two-tower AlexNet as Caffe trained it: conv1 unpadded (227 -> 55), LRN with k=1 and Caffe's
    alpha 1e-4, which Caffe (like ONNX and PyTorch) divides by the window size."""
    torch.manual_seed(seed)
    model = AlexNet(classes, size, two_tower=True, width=width).eval()
    model.features[0].padding = (0, 0)
    for m in model.features:
        if isinstance(m, torch.nn.LocalResponseNorm):
            m.alpha, m.k = 1e-4, 1.0
    return spread_logits(model)


@torch.no_grad()
def spread_logits(model: torch.nn.Module, factor: float = 20.0) -> torch.nn.Module:
    """Random narrow nets give logits near 0; spread them so a sample's top-1 is never a near tie."""
    model.classifier[-1].weight.mul_(factor)
    return model
