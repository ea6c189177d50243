"""Per-class precision and recall and the confusion matrix of an exported package, written beside it.

Files, for a package at model/<id>/ (outside the package: the Worker reads only what the manifest lists):
  model/<id>.classes.csv     label, support, precision, recall, f1 (the int8 model as served, on the test set)
  model/<id>.confusion.csv   rows: true class, columns: predicted class, counts
  model/<id>.confusion.png   the same as a picture
"""

import csv
import os

import torch

from training.plots import write_confusion_png


def per_class(confusion: torch.Tensor, labels: list) -> list:
    """[{label, support, precision, recall, f1}] from a confusion matrix (rows true, columns predicted).

    A class never predicted has precision 0 (nothing it said was right), one absent from the test set has
    recall 0 with support 0: the support column tells them apart.
    """
    cm = confusion.to(torch.float64)
    tp = cm.diag()
    predicted, actual = cm.sum(0), cm.sum(1)
    rows = []
    for i, label in enumerate(labels):
        p = float(tp[i] / predicted[i]) if predicted[i] > 0 else 0.0
        r = float(tp[i] / actual[i]) if actual[i] > 0 else 0.0
        rows.append(
            {
                "label": label,
                "support": int(actual[i]),
                "precision": round(p, 4),
                "recall": round(r, 4),
                "f1": round(2 * p * r / (p + r), 4) if p + r > 0 else 0.0,
            }
        )
    return rows


def write_class_report(package_dir: str, confusion: torch.Tensor, labels: list) -> list:
    """Write the three files beside `package_dir`; returns their paths."""
    prefix = os.path.normpath(package_dir)
    paths = [prefix + ".classes.csv", prefix + ".confusion.csv", prefix + ".confusion.png"]
    with open(paths[0], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=("label", "support", "precision", "recall", "f1"))
        w.writeheader()
        w.writerows(per_class(confusion, labels))
    with open(paths[1], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted"] + list(labels))
        for label, row in zip(labels, confusion.tolist(), strict=True):
            w.writerow([label] + [int(v) for v in row])
    write_confusion_png(paths[2], confusion, labels)
    return paths
