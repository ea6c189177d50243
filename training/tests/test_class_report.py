"""Per-class precision, recall and F1 from a confusion matrix, and the three files written beside a package."""

import csv
import os

import torch
from PIL import Image

from training.class_report import per_class, write_class_report

LABELS = ["cat", "dog", "owl"]
# rows: true class, columns: predicted. cat 3 right of 4; dog 1 of 2; owl never in the test set, predicted once
CONFUSION = torch.tensor([[3, 1, 0], [0, 1, 1], [0, 0, 0]])


def test_precision_recall_and_f1_per_class_from_the_confusion_matrix():
    rows = per_class(CONFUSION, LABELS)
    assert rows == [
        {"label": "cat", "support": 4, "precision": 1.0, "recall": 0.75, "f1": round(2 * 0.75 / 1.75, 4)},
        {"label": "dog", "support": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5},
        {"label": "owl", "support": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0},  # support tells absent apart
    ]


def test_the_report_files_sit_beside_the_package_and_hold_the_counts(tmp_path):
    package = str(tmp_path / "pets-v1")
    paths = write_class_report(package + "/", CONFUSION, LABELS)
    assert paths == [package + ".classes.csv", package + ".confusion.csv", package + ".confusion.png"]
    with open(paths[0]) as f:
        classes = list(csv.DictReader(f))
    assert [(r["label"], r["support"], r["recall"]) for r in classes] == [
        ("cat", "4", "0.75"),
        ("dog", "2", "0.5"),
        ("owl", "0", "0.0"),
    ]
    with open(paths[1]) as f:
        matrix = list(csv.reader(f))
    assert matrix[0] == ["true \\ predicted"] + LABELS
    assert [[int(v) for v in row[1:]] for row in matrix[1:]] == CONFUSION.tolist()
    assert Image.open(paths[2]).format == "PNG" and not os.path.exists(package)
