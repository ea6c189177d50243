"""Run records: metrics.csv in a fixed column order, loss/accuracy curves and the confusion matrix as PNGs."""

import csv
import os

import torch
from PIL import Image

from training.plots import COLUMNS, write_metrics_csv, write_run_records

HISTORY = [
    {"epoch": 1, "lr": 0.1, "train_loss": 2.0, "train_top1": 0.3, "test_loss": 1.9, "test_top1": 0.35,
     "test_top5": 0.8, "epoch_seconds": 1.5, "skipped": 0, "test_skipped": 0, "test_count": 100, "device": "cpu"},
    {"epoch": 2, "lr": 0.05, "train_loss": 1.0, "train_top1": 0.6, "test_loss": 1.1, "test_top1": 0.62,
     "test_top5": 0.9, "epoch_seconds": 1.4, "skipped": 1, "test_skipped": 0, "avg_test_top1": 0.64, "device": "cpu"},
]  # fmt: skip


def test_metrics_csv_keeps_its_columns_and_leaves_what_an_epoch_lacks_empty(tmp_path):
    path = str(tmp_path / "metrics.csv")
    write_metrics_csv(path, HISTORY)
    with open(path) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS  # test_count and device are not columns
    assert rows[0]["avg_test_top1"] == "" and rows[1]["avg_test_top1"] == "0.64"
    assert [float(r["train_loss"]) for r in rows] == [2.0, 1.0]


def test_run_records_write_the_csv_the_curves_and_the_confusion_matrix(tmp_path):
    out = str(tmp_path / "new" / "run")  # made when missing
    write_run_records(out, HISTORY, torch.tensor([[5, 1], [2, 7]]), ["a", "b"])
    assert sorted(os.listdir(out)) == ["confusion.png", "curves.png", "metrics.csv"]
    curves = Image.open(os.path.join(out, "curves.png"))
    assert curves.format == "PNG" and curves.size == (1000, 400)  # 10x4 inches at 100 dpi
    write_run_records(str(tmp_path / "none"), HISTORY, None, ["a", "b"])
    assert "confusion.png" not in os.listdir(tmp_path / "none")
