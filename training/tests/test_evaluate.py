"""Evaluation counts exactly: loss, top-1, top-5, the confusion matrix, undecodable images, ten-crop averaging."""

import math

import torch

from training.evaluate import evaluate
from training.runtime import Runtime

CPU = Runtime(ddp=False, rank=0, world=1, device=torch.device("cpu"), cuda=False)


class Fixed(torch.nn.Module):
    """Returns the logits stored for each input id (x[:, 0])."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x.flatten(1)[:, 0].long()]


def test_top1_top5_loss_and_the_confusion_matrix_are_counted_exactly():
    logits = torch.tensor(
        [[5.0, 1, 0, 0, 0, 0], [0, 5.0, 1, 0, 0, 0], [0, 0.5, 0.1, 0.2, 0.3, 5.0], [1, 2, 3, 4, 5, 6.0]]
    )
    labels = torch.tensor([0, 2, 1, 0])
    ids = torch.arange(4).float()[:, None]
    loader = [(ids[:2], labels[:2], 0), (None, None, 2), (ids[2:], labels[2:], 1)]
    ev = evaluate(Fixed(logits), loader, CPU, 6)
    # top-1 right: image 0 only; top-5 right: 0, 1 and 2 (their classes come 2nd); image 3's class 0 comes last
    assert ev["test_top1"] == 1 / 4 and ev["test_top5"] == 3 / 4
    assert ev["test_count"] == 4 and ev["test_skipped"] == 3
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    assert math.isclose(ev["test_loss"], loss, rel_tol=1e-12)
    expected = torch.zeros(6, 6, dtype=torch.int64)
    for true, predicted in ((0, 0), (2, 1), (1, 5), (0, 5)):
        expected[true, predicted] += 1
    assert torch.equal(ev["confusion"], expected)


def test_a_forward_override_is_what_gets_evaluated():
    logits = torch.eye(3) * 4
    ids = torch.arange(3).float()[:, None]
    loader = [(ids, torch.tensor([0, 1, 2]), 0)]
    assert evaluate(Fixed(logits), loader, CPU, 3)["test_top1"] == 1.0
    assert evaluate(Fixed(logits), loader, CPU, 3, forward=lambda x: -Fixed(logits)(x))["test_top1"] == 0.0


def test_ten_crops_average_their_probabilities():
    logits = torch.tensor([[3.0, 0.0], [0.0, 1.0]])  # crop 0 says class 0 strongly, crop 1 class 1 weakly
    crops = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1, 1)  # [1 image, 2 crops, C, H, W]: the crops' ids
    ev = evaluate(Fixed(logits), [(crops, torch.tensor([0]), 0)], CPU, 2)
    mean = logits.softmax(1).mean(0)
    assert ev["test_top1"] == 1.0  # the mean probability of class 0 is the larger
    assert math.isclose(ev["test_loss"], -math.log(mean[0].item()), rel_tol=1e-6)
