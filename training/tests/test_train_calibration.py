"""train.py holds a stratified share of the training images out (--val-fraction) and fits the package's
calibration on them at export: the manifest carries it and the samples their OOD scores."""

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
    proc = run_train(TINY + ["--epochs", "1", "--val-fraction", "0.1", "--no-onnx", "--out", out,
                             "--export-dir", pkg])  # fmt: skip
    assert "922 train" in proc.stdout and "export: calibration T" in proc.stdout  # 10% of each class out
    manifest, _, samples = load_package(pkg)
    cal = manifest["calibration"]
    assert cal["temperature"] > 0 and "102 training images held out" in cal["fitted_on"]
    assert cal["ood"]["method"] == "energy+input" and len(cal["ood"]["input"]["mean"]) == 64
    m = cal["metrics"]
    assert m["dataset"] == "fashion-mnist/test (256)" and 0 <= m["flagged_unknown"] <= 1
    assert {"synthetic", "characters"} <= set(m["ood"])
    x = torch.from_numpy(np.array(samples["inputs"])).permute(0, 3, 1, 2).numpy()
    want = ood_score(cal["ood"], np.array(samples["logits"], dtype=np.float64), x)
    assert np.allclose(samples["ood_scores"], want, rtol=1e-5, atol=1e-5)
    assert json.load(open(os.path.join(out, "config.json")))["val_fraction"] == 0.1
