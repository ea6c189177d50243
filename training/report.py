"""The package's report card (docs/model-package.md, "report"): report.json and thumbnails.png inside the
package, named by the manifest's `report` block, for the demo page's Model view (GET /v1/models).

report.json holds what the view draws, all of the int8 model as served on the evaluation images: accuracy,
precision and recall per label, the confusion matrix, the reliability diagram's bins before and after the
calibration's temperature, ECE both ways, the training curves (metrics.csv's columns) and the out-of-
distribution figures. thumbnails.png is a sprite of small evaluation images, a few for each cell of the
confusion matrix (the mistakes behind a number); report.json's `thumbnails` says which tile is which.
"""

import hashlib
import io
import json
import os

import numpy as np

from training import calibration as C
from training.class_report import per_class

REPORT_FILE = "report.json"
THUMBNAILS_FILE = "thumbnails.png"
TILE = 28  # pixels a side: Fashion-MNIST's own size; enough to tell a shirt from a coat
PER_CELL = 4  # thumbnails per confusion cell
COLUMNS = 32  # tiles per sprite row
# The Worker refuses a report over 256 KiB (src/model/store.ts); a confusion matrix with a thumbnail index
# grows with the square of the labels, so above this many labels the report leaves both out.
MAX_MATRIX_LABELS = 100
CURVE_COLUMNS = ("epoch", "lr", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "avg_test_top1")


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = C.ECE_BINS) -> list:
    """Per equal-width confidence bin (as C.ece bins them): [{lo, hi, count, accuracy, confidence}]; accuracy and
    confidence are null for an empty bin."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        n = int(m.sum())
        out.append(
            {
                "lo": round(b / bins, 4),
                "hi": round((b + 1) / bins, 4),
                "count": n,
                "accuracy": round(float(correct[m].mean()), 4) if n else None,
                "confidence": round(float(conf[m].mean()), 4) if n else None,
            }
        )
    return out


def curves(history: list) -> dict:
    """Column -> list of values per epoch (None where a row lacks it), for the columns any row has."""
    out = {}
    for key in CURVE_COLUMNS:
        values = [row.get(key) for row in history]
        if any(v not in (None, "") for v in values):
            out[key] = [None if v in (None, "") else round(float(v), 5) for v in values]
    return out


def read_metrics_csv(path: str) -> list:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def thumbnail_pixels(inputs: np.ndarray, preprocess: dict) -> np.ndarray:
    """[N, TILE, TILE, C] uint8 pictures of preprocessed NCHW inputs: normalisation undone, resized to TILE."""
    from PIL import Image

    mean = np.asarray(preprocess["mean"], dtype=np.float64)[:, None, None]
    std = np.asarray(preprocess["std"], dtype=np.float64)[:, None, None]
    gray = preprocess.get("color") == "gray"
    tiles = []
    for x in inputs:
        px = np.clip((x * std + mean) * preprocess["scale"], 0, 255).round().astype(np.uint8).transpose(1, 2, 0)
        img = Image.fromarray(px[:, :, 0] if gray else px, "L" if gray else "RGB").resize((TILE, TILE), Image.BILINEAR)
        tiles.append(np.asarray(img).reshape(TILE, TILE, -1))
    return np.stack(tiles) if tiles else np.zeros((0, TILE, TILE, 1 if gray else 3), np.uint8)


def sprite(labels_true: np.ndarray, predicted: np.ndarray, inputs: np.ndarray, preprocess: dict, classes: int):
    """(PNG bytes, index): up to PER_CELL evaluation images of each confusion cell, the first in order; index
    `cells[t][p]` lists the tile numbers of true label t predicted as p (tile k at column k % COLUMNS, row k //
    COLUMNS)."""
    from PIL import Image

    cells = [[[] for _ in range(classes)] for _ in range(classes)]
    chosen = []
    for i, (t, p) in enumerate(zip(labels_true, predicted, strict=True)):
        if len(cells[t][p]) < PER_CELL:
            cells[t][p].append(len(chosen))
            chosen.append(i)
    tiles = thumbnail_pixels(inputs[chosen], preprocess)
    rows = max(1, -(-len(chosen) // COLUMNS))
    channels = tiles.shape[3]
    sheet = np.zeros((rows * TILE, COLUMNS * TILE, channels), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, COLUMNS)
        sheet[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = tile
    buf = io.BytesIO()
    Image.fromarray(sheet[:, :, 0] if channels == 1 else sheet, "L" if channels == 1 else "RGB").save(
        buf, "PNG", optimize=True
    )
    index = {"file": THUMBNAILS_FILE, "tile": TILE, "columns": COLUMNS, "count": len(chosen), "cells": cells}
    return buf.getvalue(), index


def build_report(
    labels: list, logits, y, inputs, preprocess: dict, dataset: str, calibration=None, history=None
) -> tuple:
    """(report dict, thumbnails PNG bytes or None) of served logits [N, classes], labels [N] and preprocessed
    inputs [N, C, H, W] of the evaluation images."""
    import torch

    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y)
    n = len(labels)
    predicted = logits.argmax(1)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    raw = C.softmax(logits)
    report = {
        "dataset": dataset,
        "count": int(len(y)),
        "accuracy": round(float((predicted == y).mean()), 4),
        "per_class": per_class(torch.from_numpy(confusion), labels),
        "reliability": {"bins": C.ECE_BINS, "before": reliability(raw, y)},
        "ece": {"before": round(C.ece(raw, y), 4)},
    }
    if calibration is not None:
        calibrated = C.softmax(logits, calibration["temperature"])
        report["reliability"]["after"] = reliability(calibrated, y)
        report["ece"]["after"] = round(C.ece(calibrated, y), 4)
        report["temperature"] = calibration["temperature"]
        metrics = calibration.get("metrics", {})
        report["ood"] = {
            "method": calibration["ood"]["method"],
            "threshold": calibration["ood"]["threshold"],
            "flagged_unknown": metrics.get("flagged_unknown"),
            "sets": metrics.get("ood", {}),
        }
    if history:
        report["curves"] = curves(history)
    png = None
    if n <= MAX_MATRIX_LABELS:
        report["confusion"] = confusion.tolist()
        png, report["thumbnails"] = sprite(y, predicted, np.asarray(inputs), preprocess, n)
    return report, png


def _ref(name: str, blob: bytes) -> dict:
    return {"file": name, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}


def attach_report(package_dir: str, report: dict, png) -> dict:
    """Write report.json (and thumbnails.png) into a package being made and name them in its manifest's `report`
    block (with their lengths and SHA-256, as the weights); returns the manifest."""
    blob = (json.dumps(report, separators=(",", ":")) + "\n").encode()
    with open(os.path.join(package_dir, REPORT_FILE), "wb") as f:
        f.write(blob)
    block = _ref(REPORT_FILE, blob)
    if png is not None:
        with open(os.path.join(package_dir, THUMBNAILS_FILE), "wb") as f:
            f.write(png)
        block["thumbnails"] = _ref(THUMBNAILS_FILE, png)
    path = os.path.join(package_dir, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    manifest["report"] = block
    C.write_json(path, manifest)
    return manifest
