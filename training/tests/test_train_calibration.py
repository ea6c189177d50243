"""train.py holds a stratified share of the training images out (--val-fraction) and fits the package's
calibration on them at export: the manifest carries it and the samples their OOD scores; the package carries
its report card (report.json, thumbnails.png)."""

import hashlib
import io
import json
import os

import numpy as np
import torch

from conftest import TINY, needs_fmnist, run_train
from training import data as D
from training.calibration import ood_score
from training.package import load_package


def test_the_split_is_stratified_seeded_and_disjoint():
    labels = np.repeat(np.arange(10), [100, 100, 100, 100, 100, 100, 100, 100, 100, 7])
    kept, held = D.stratified_split(labels, 0.05)
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == len(labels)
    counts = np.bincount(labels[held], minlength=10)
    assert list(counts[:9]) == [5] * 9 and counts[9] == 1  # round(0.35) = 0, yet every class is seen
    assert np.array_equal(held, D.stratified_split(labels, 0.05)[1])  # the same images every run
    assert len(D.stratified_split(labels, 0.0)[1]) == 0


def test_a_tiny_run_writes_the_calibration_fitted_on_held_out_training_images(tmp_path):
    needs_fmnist()
    out, pkg = str(tmp_path / "run"), str(tmp_path / "tiny-cal-v1")
    proc = run_train(TINY + ["--epochs", "1", "--val-fraction", "0.1", "--temperature-fit", "ece", "--no-onnx",
                             "--out", out, "--export-dir", pkg])  # fmt: skip
    assert "922 train" in proc.stdout and "export: calibration T" in proc.stdout  # 10% of each class out
    manifest, _, samples = load_package(pkg)
    cal = manifest["calibration"]
    assert cal["temperature"] > 0 and cal["temperature_fit"] == "ece"
    assert "102 training images held out" in cal["fitted_on"]
    assert cal["ood"]["method"] == "energy+input" and len(cal["ood"]["input"]["mean"]) == 64
    m = cal["metrics"]
    assert m["dataset"] == "fashion-mnist/test (256)" and 0 <= m["flagged_unknown"] <= 1
    assert {"synthetic", "characters"} <= set(m["ood"])
    x = torch.from_numpy(np.array(samples["inputs"])).permute(0, 3, 1, 2).numpy()
    want = ood_score(cal["ood"], np.array(samples["logits"], dtype=np.float64), x)
    assert np.allclose(samples["ood_scores"], want, rtol=1e-5, atol=1e-5)
    assert json.load(open(os.path.join(out, "config.json")))["val_fraction"] == 0.1
    check_report(pkg, manifest)


def check_report(pkg: str, manifest: dict) -> None:
    """report.json and thumbnails.png match the manifest's hashes and describe the 256 test images."""
    from PIL import Image

    blobs = {}
    for ref in (manifest["report"], manifest["report"]["thumbnails"]):
        blobs[ref["file"]] = open(os.path.join(pkg, ref["file"]), "rb").read()
        assert hashlib.sha256(blobs[ref["file"]]).hexdigest() == ref["sha256"]
        assert len(blobs[ref["file"]]) == ref["bytes"]
    report = json.loads(blobs["report.json"])
    assert report["count"] == 256 and sum(map(sum, report["confusion"])) == 256
    assert [r["label"] for r in report["per_class"]] == manifest["labels"]
    assert report["accuracy"] == round(sum(report["confusion"][i][i] for i in range(10)) / 256, 4)
    for side in ("before", "after"):
        assert sum(b["count"] for b in report["reliability"][side]) == 256 and len(report["reliability"][side]) == 15
    assert report["ece"]["after"] == manifest["calibration"]["metrics"]["ece_calibrated"]
    assert report["curves"]["epoch"] == [1] and len(report["curves"]["test_top1"]) == 1
    assert {"synthetic", "characters"} <= set(report["ood"]["sets"])
    thumbs = report["thumbnails"]
    tiles = [k for row in thumbs["cells"] for cell in row for k in cell]
    assert sorted(tiles) == list(range(thumbs["count"])) and all(len(c) <= 4 for row in thumbs["cells"] for c in row)
    for t, row in enumerate(report["confusion"]):  # a cell has thumbnails exactly when it has images
        assert [min(v, 4) for v in row] == [len(c) for c in thumbs["cells"][t]]
    sheet = Image.open(io.BytesIO(blobs["thumbnails.png"]))
    assert sheet.mode == "L" and sheet.width == thumbs["columns"] * thumbs["tile"]
    assert sheet.height == -(-thumbs["count"] // thumbs["columns"]) * thumbs["tile"]
