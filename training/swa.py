"""Stochastic weight averaging (Izmailov, Podoprikhin, Garipov, Vetrov and Wilson, UAI 2018, "Averaging Weights
Leads to Wider Optima and Better Generalization", arXiv:1803.05407).

SGD with a learning rate that does not fall to zero keeps moving around the edge of a wide low-loss region; the
mean of the weights it passes through sits nearer that region's middle, which generalises better than any one
of them. The mean is taken at the end of each averaged epoch (with the cyclic schedule: where each epoch's
learning rate is lowest). BatchNorm statistics of the averaged weights are not the mean of the statistics the
iterates had, so they are measured again on training images before the average is evaluated or exported.
"""

import copy

import torch
import torch.nn as nn
from torch.optim.swa_utils import update_bn


class WeightAverage:
    """Running mean of a model's parameters; buffers (BatchNorm statistics) are recomputed, not averaged.

    torch.optim.swa_utils.AveragedModel averages the same way but wraps the network (its state_dict keys gain a
    `module.` prefix, its count is a tensor); this keeps the plain network, which exports like any other.
    """

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.count = 0

    @torch.no_grad()
    def add(self, model: nn.Module):
        """Fold the model's current weights into the mean (the first call copies them)."""
        self.count += 1
        for mine, theirs in zip(self.model.parameters(), model.parameters(), strict=True):
            mine.add_(theirs.detach().to(mine.device) - mine, alpha=1.0 / self.count)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "count": self.count}

    def load_state_dict(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.count = state["count"]


def recompute_batch_norm(model: nn.Module, loader, device, max_images: int = 0) -> int:
    """Set every BatchNorm's running mean and variance to the plain average over the loader's images.

    PyTorch's update_bn does the measuring (momentum=None: a cumulative mean, each batch counting the same); this
    feeds it the images of train.py's (images, labels, undecodable count) batches, skipping batches whose images
    all failed to decode, up to max_images. Returns the number of images seen (0 when the model has no
    BatchNorm: update_bn then reads nothing).
    """
    seen = [0]

    def images():
        for x, _, _ in loader:
            if x is None:
                continue
            if max_images and seen[0] >= max_images:
                return
            seen[0] += len(x)
            yield x

    update_bn(images(), model, device)
    return seen[0]
