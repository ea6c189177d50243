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


class WeightAverage:
    """Running mean of a model's parameters; buffers (BatchNorm statistics) are recomputed, not averaged."""

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.count = 0

    @torch.no_grad()
    def add(self, model: nn.Module):
        """Fold the model's current weights into the mean (the first call copies them)."""
        self.count += 1
        for mine, theirs in zip(self.model.parameters(), model.parameters()):
            mine.add_(theirs.detach().to(mine.device) - mine, alpha=1.0 / self.count)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "count": self.count}

    def load_state_dict(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.count = state["count"]


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, loader, device, max_images: int = 0) -> int:
    """Set every BatchNorm's running mean and variance to the plain average over the loader's images.

    momentum=None makes PyTorch keep a cumulative mean instead of an exponential one, so each batch counts the
    same. Returns the number of images seen (0 when the model has no BatchNorm, and nothing is run).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    saved = [(m.momentum, m.training) for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()  # BatchNorm collects statistics only in training mode; no gradients are taken
    seen = 0
    for x, _, _ in loader:
        if x is None:
            continue
        model(x.to(device))
        seen += len(x)
        if max_images and seen >= max_images:
            break
    for m, (momentum, _) in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)
    return seen
