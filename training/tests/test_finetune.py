"""train.py --init FILE fine-tunes on an image folder: a torchvision .pth or an ONNX graph in, every layer but
the last loaded, a new last layer for the folder's classes learning 10x faster, resumable, a package out."""

import csv
import os

import pytest
import torch
import torch.nn.functional as F

from conftest import run_train
from onnx_sources import caffe_alexnet, tv_alexnet
from tiny_images import CLASSES, make_image_folder
from training.finetune import finetune_model, param_groups
from training.onnx_export import export_onnx
from training.package import load_package

# Narrow AlexNets at 67x67 (the smallest input of Caffe's unpadded conv1) keep every run to seconds; the
# full-size paths run in test_onnx_import.py and test_walkthrough.py.
FAST = ["--input-size", "67", "--batch-size", "10", "--threads", "2", "--workers", "0", "--no-onnx", "--samples", "2"]


def test_fine_tuning_a_pth_with_frozen_features_trains_only_the_dense_layers_and_resumes(tmp_path):
    images = make_image_folder(str(tmp_path / "images"))
    source = tv_alexnet(0.0625, 67, 1000)
    pth = str(tmp_path / "alexnet.pth")
    torch.save(source.state_dict(), pth)
    out = str(tmp_path / "run")
    args = FAST + ["--dataset", images, "--init", pth, "--freeze-features", "--epochs", "2", "--out", out]
    first = run_train(args + ["--stop-after", "1"])
    assert "--arch alexnet-tv --width 0.0625" in first.stdout and "new: classifier.6" in first.stdout
    listed = [
        line.split()[0]
        for line in first.stdout.split("optimised parameters:\n")[1].splitlines()
        if line.startswith("  ")
    ]
    assert listed == [
        "classifier.1.weight",
        "classifier.1.bias",
        "classifier.4.weight",
        "classifier.4.bias",
        "classifier.6.weight",
        "classifier.6.bias",
    ]
    run_train(args + ["--resume", os.path.join(out, "ckpt.pt")])
    ckpt = torch.load(os.path.join(out, "ckpt.pt"), weights_only=False)
    assert ckpt["epoch"] == 2 and ckpt["config"]["arch"] == "alexnet-tv"
    for key, value in source.features.state_dict().items():  # frozen: exactly the loaded weights
        assert torch.equal(ckpt["model"]["features." + key], value), key
    assert ckpt["model"]["classifier.6.weight"].shape == (len(CLASSES), 256)  # fc7 of width 1/16: 256 units
    # fc6 and fc7 are loaded and learn at lr / 10 (4 tensors), the new fc8 at lr (2 tensors), after resuming too.
    groups = sorted((g["lr_mult"], len(g["params"]), g["lr"]) for g in ckpt["optimizer"]["param_groups"])
    assert groups == [(0.1, 4, 0.001), (1.0, 2, 0.01)]


def test_fine_tuning_an_onnx_graph_picks_the_two_tower_arch_and_exports_per_class_reports(tmp_path):
    images = make_image_folder(str(tmp_path / "images"))
    graph = str(tmp_path / "bvlc_alexnet.onnx")
    export_onnx(caffe_alexnet(0.0625, 67, 1000), graph, 67, softmax=True)
    pkg = str(tmp_path / "shapes-v1")
    proc = run_train(
        FAST
        + [
            "--dataset",
            images,
            "--init",
            graph,
            "--epochs",
            "1",
            "--lr",
            "0.02",
            "--out",
            str(tmp_path / "run"),
            "--export-dir",
            pkg,
        ]
    )
    assert "--arch alexnet --two-tower --width 0.0625" in proc.stdout
    assert "Warning" not in proc.stderr and "warn" not in proc.stderr.lower(), proc.stderr
    assert "images (100%)" in proc.stdout and "img/s" in proc.stdout  # plain progress lines in a log
    manifest, _, samples = load_package(pkg)
    assert manifest["labels"] == sorted(name for name, _ in CLASSES)  # class folders, sorted
    assert [layer["groups"] for layer in manifest["layers"] if layer["op"] == "conv2d"] == [1, 2, 1, 2, 2]
    assert manifest["training"]["initialised_from"] == "bvlc_alexnet.onnx"
    recall = manifest["metrics"]["per_class_recall"]
    with open(pkg + ".classes.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["recall"]) for r in rows] == recall and sum(int(r["support"]) for r in rows) == 12
    with open(pkg + ".confusion.csv") as f:
        matrix = list(csv.reader(f))
    assert matrix[0][1:] == manifest["labels"] and sum(int(v) for row in matrix[1:] for v in row[1:]) == 12
    assert os.path.getsize(pkg + ".confusion.png") > 0 and samples["logits"].shape == (2, 3)


def test_finetune_model_keeps_the_sources_layers_and_sizes_a_new_head():
    source = tv_alexnet(0.0625, 67, 1000)
    model, loaded, fresh = finetune_model(source, 4, 67, dropout=0.5)
    assert loaded == ["features.0", "features.3", "features.6", "features.8", "features.10", "classifier.1",
                      "classifier.4"] and fresh == ["classifier.6"]  # fmt: skip
    for key, value in source.state_dict().items():
        if not key.startswith("classifier.6"):
            assert torch.equal(model.state_dict()[key], value), key
    assert model.classifier[6].out_features == 4 and torch.all(model.classifier[6].bias == 0)
    # at another input size fc6 no longer fits the feature map: it is new too
    _, _, fresh_at_99 = finetune_model(source, 4, 99, dropout=0.5)
    assert fresh_at_99 == ["classifier.1", "classifier.6"]


def test_training_with_frozen_features_moves_only_the_dense_layers_and_the_head_fastest():
    torch.manual_seed(0)
    model, _, fresh = finetune_model(tv_alexnet(0.0625, 67, 1000), 2, 67, dropout=0.0)
    groups, lines = param_groups(model, fresh, lr=0.1, ratio=10.0, freeze_features=True)
    assert sorted((g["lr_mult"], len(g["params"])) for g in groups) == [(0.1, 4), (1.0, 2)]
    assert len(lines) == 6 and lines[-1].endswith("(new)")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    x = torch.randn(32, 3, 67, 67) * 20  # a narrow random network shrinks its input: keep the activations O(1)
    with torch.no_grad():  # labels the frozen features carry: which side of a random plane they fall on
        feats = model.features(x).flatten(1)
        side = feats @ torch.randn(feats.shape[1])
        y = (side > side.median()).long()
    losses = []
    for _ in range(100):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses  # it learns
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("features."))
    moved = {k: (after[k] - before[k]).norm().item() for k in before if k.startswith("classifier.")}
    assert all(v > 0 for v in moved.values())


def test_without_new_layers_everything_learns_at_lr_and_nothing_left_is_an_error():
    model = tv_alexnet(0.0625, 67, 10)
    groups, _ = param_groups(model, [], lr=0.01, ratio=10.0, freeze_features=False)
    assert [(g["lr"], g["lr_mult"], len(g["params"])) for g in groups] == [(0.01, 1.0, 16)]
    head_only = torch.nn.Sequential()
    head_only.features = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="no parameter is left to train"):
        param_groups(head_only, [], lr=0.01, ratio=10.0, freeze_features=True)
