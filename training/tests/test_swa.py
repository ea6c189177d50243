"""Stochastic weight averaging: the mean itself, BatchNorm statistics measured again, and train.py exporting the
average (at the end of a run, after a resume, and with --export-only) under the cyclic schedule."""

import csv
import json
import os

import numpy as np
import torch
import torch.nn as nn

from conftest import TINY, needs_fmnist, run_train
from training.package import load_package
from training.swa import WeightAverage, recompute_batch_norm


def small_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def test_the_weight_average_is_the_mean_of_the_weights_it_was_given():
    nets = [small_net(s) for s in range(3)]
    avg = WeightAverage(nets[0])
    for n in nets:
        avg.add(n)
    assert avg.count == 3
    for name, p in avg.model.named_parameters():
        expected = torch.stack([dict(n.named_parameters())[name].detach() for n in nets]).mean(0)
        assert torch.allclose(p, expected, rtol=0, atol=1e-6), name
    assert not any(p.requires_grad for p in avg.model.parameters())
    # a checkpoint round trip keeps the mean and its count, so a resumed run goes on averaging
    again = WeightAverage(small_net(9))
    again.load_state_dict(avg.state_dict())
    again.add(small_net(3))
    avg.add(small_net(3))
    assert again.count == avg.count == 4
    for a, b in zip(again.model.parameters(), avg.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_batch_norm_statistics_are_measured_again_with_every_batch_counting_the_same():
    net = small_net(0)
    bn = net[1]
    bn.momentum = 0.3
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 8, 8, generator=gen) * 2 + 1, torch.zeros(8), 0) for _ in range(4)]
    loader = batches[:2] + [(None, None, 3)] + batches[2:]  # a batch whose images all failed to decode
    net.eval()
    seen = recompute_batch_norm(net, loader, torch.device("cpu"))
    assert seen == 32 and not net.training and bn.momentum == 0.3
    with torch.no_grad():
        acts = [net[0](x) for x, _, _ in batches]
    mean = torch.stack([a.mean((0, 2, 3)) for a in acts]).mean(0)
    var = torch.stack([a.var((0, 2, 3), unbiased=True) for a in acts]).mean(0)  # PyTorch keeps unbiased variances
    assert torch.allclose(bn.running_mean, mean, atol=1e-5) and torch.allclose(bn.running_var, var, atol=1e-4)
    assert recompute_batch_norm(net, batches, torch.device("cpu"), max_images=10) == 16  # stops after the batch
    assert recompute_batch_norm(nn.Linear(2, 2), batches, torch.device("cpu")) == 0


def read_rows(out):
    with open(os.path.join(out, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def package_weights(path):
    return load_package(str(path))[1]


def test_a_run_with_weight_averaging_exports_the_average_and_resumes_it(tmp_path):
    needs_fmnist()
    plain = TINY + [
        "--batch-norm",
        "--train-subset",
        "256",
        "--epochs",
        "3",
        "--schedule",
        "cyclic",
        "--lr-min",
        "0.001",
        "--no-onnx",
    ]
    common = plain + ["--swa-epochs", "2"]
    run_train(common + ["--out", str(tmp_path / "straight"), "--export-dir", str(tmp_path / "avg-v1")])
    rows = read_rows(str(tmp_path / "straight"))
    # the average is taken over the last 2 epochs only; 3 epochs on 256 images put it well above chance (0.1)
    assert rows[0]["avg_test_top1"] == "" and all(float(r["avg_test_top1"]) > 0.3 for r in rows[1:])
    recipe = json.load(open(tmp_path / "avg-v1" / "manifest.json"))["training"]["recipe"]
    assert recipe["schedule"] == "cyclic" and recipe["lr_min"] == 0.001
    assert "last 2 epochs" in recipe["weight_averaging"]

    # interrupted after the first averaged epoch and resumed: the same mean as the straight run
    run_train(common + ["--out", str(tmp_path / "split"), "--stop-after", "2"])
    run_train(common + ["--out", str(tmp_path / "split"), "--resume", str(tmp_path / "split" / "ckpt.pt")])
    a = torch.load(tmp_path / "straight" / "ckpt.pt", weights_only=False)["swa"]
    b = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=False)["swa"]
    assert a["count"] == b["count"] == 2
    for k, v in a["model"].items():
        if v.is_floating_point() and "running" not in k:
            assert torch.allclose(v, b["model"][k], rtol=0, atol=1e-6), k

    # --export-only of the checkpoint writes the same average; without --swa-epochs, the last iterate instead
    ckpt = str(tmp_path / "straight" / "ckpt.pt")
    run_train(
        common
        + ["--export-only", "--resume", ckpt, "--export-dir", str(tmp_path / "avg-v2"), "--out", str(tmp_path / "x")]
    )
    run_train(
        plain
        + ["--export-only", "--resume", ckpt, "--export-dir", str(tmp_path / "last-v1"), "--out", str(tmp_path / "y")]
    )
    end_of_run, exported, last = (package_weights(tmp_path / p) for p in ("avg-v1", "avg-v2", "last-v1"))
    assert all(np.array_equal(end_of_run[k], exported[k]) for k in end_of_run)
    assert any(not np.array_equal(end_of_run[k], last[k]) for k in end_of_run)
    metrics = load_package(str(tmp_path / "avg-v1"))[0]["metrics"]
    assert metrics["top1_int8"] > 0.3  # the exported average learned: chance is 0.1
    # and its top-1 is the served model's confusion matrix, written beside the package, recounted
    assert metrics["top1_int8"] == confusion_top1(str(tmp_path / "avg-v1.confusion.csv"))


def confusion_top1(path):
    """Top-1 from a <package>.confusion.csv (rows true, columns predicted), rounded as the manifest rounds it."""
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    counts = [[int(v) for v in row[1:]] for row in rows]
    return round(sum(counts[i][i] for i in range(len(counts))) / sum(map(sum, counts)), 4)
