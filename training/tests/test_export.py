"""The end of a run: a network trained here on a tiny image folder is evaluated in fp32 and in the served
arithmetic, and the package, the per-class report and the run's records say the same numbers."""

import csv
import json
import os

import torch
import torch.nn.functional as F

from conftest import train_config
from tiny_images import CLASSES, make_image_folder
from training import data as D
from training.evaluate import evaluate
from training.export import export
from training.package import load_package
from training.quantize import fold_and_quantize, served_forward
from training.runtime import Runtime, make_loader
from training.warm_start import start_model

CPU = Runtime(ddp=False, rank=0, world=1, device=torch.device("cpu"), cuda=False)


def train(model, train_ds, test_ds, cfg, epochs):
    """Plain SGD over the folder's loader, with history rows like train.py's."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9)
    history = []
    for epoch in range(epochs):
        model.train()
        for x, y, _ in make_loader(train_ds, cfg, CPU, True, epoch):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        ev = evaluate(model, make_loader(test_ds, cfg, CPU, False, 0), CPU, len(CLASSES))
        ev.pop("confusion")
        history.append(dict(ev, epoch=epoch + 1, epoch_seconds=1.0, train_loss=loss.item(), train_top1=0.0))
    return history


def test_a_trained_network_exports_with_metrics_that_a_recount_reproduces_exactly(tmp_path):
    torch.manual_seed(0)
    folder = make_image_folder(str(tmp_path / "shapes"), train_per_class=20, val_per_class=6, size=72)
    cfg = train_config(dataset=folder, input_size=64, width=0.0625, dropout=0.0, batch_size=10, lr=0.01,
                       pca_sigma=0.0, workers=0, samples=2, onnx=False, out=str(tmp_path / "run"),
                       export_dir=str(tmp_path / "shapes-v1"), note="exported by a test")  # fmt: skip
    train_ds, test_ds, labels, preprocess = D.make_datasets(cfg)
    model = start_model(cfg, len(labels), train_ds).model
    history = train(model, train_ds, test_ds, cfg, epochs=8)
    metrics = export(model, cfg, CPU, test_ds, labels, preprocess, history, "cpu")

    # three classes told apart by colour: the served int8 model is well above chance (1/3) on 18 images
    assert metrics["top1_int8"] >= 0.75, metrics
    loader = make_loader(test_ds, cfg, CPU, False, 0)
    fp32 = evaluate(model, loader, CPU, len(labels))
    layers = fold_and_quantize(model)
    int8 = evaluate(model, loader, CPU, len(labels), forward=lambda x: served_forward(layers, x))
    assert metrics["top1_fp32"] == round(fp32["test_top1"], 4) and metrics["top5_fp32"] == round(fp32["test_top5"], 4)
    assert metrics["top1_int8"] == round(int8["test_top1"], 4) and metrics["dataset"] == "shapes/val (18)"

    manifest, _, samples = load_package(cfg["export_dir"])
    assert manifest["metrics"] == metrics and manifest["labels"] == sorted(name for name, _ in CLASSES)
    assert manifest["training"]["epochs"] == 8 and manifest["training"]["note"] == "exported by a test"
    with torch.no_grad():
        xs = torch.stack([test_ds[i][0] for i in range(2)])
        assert torch.equal(torch.from_numpy(samples["logits"].copy()), served_forward(layers, xs))
    with open(cfg["export_dir"] + ".classes.csv") as f:
        recall = [float(r["recall"]) for r in csv.DictReader(f)]
    assert recall == metrics["per_class_recall"]
    assert sorted(os.listdir(cfg["out"])) == ["confusion.png", "curves.png", "metrics.csv"]
    assert json.load(open(os.path.join(cfg["export_dir"], "manifest.json")))["id"] == "shapes-v1"
