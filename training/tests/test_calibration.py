"""Temperature scaling, ECE, the OOD scores and their metrics, on data whose answers are known."""

import importlib.util

import numpy as np
import pytest
import torch

from training import calibration as C
from training.model import build_model
from training.quantize import fold_and_quantize, served_forward


def sampled(t_true: float, n: int = 20000, classes: int = 10, seed: int = 0):
    """Logits and labels drawn from softmax(logits / t_true): scaling by t_true calibrates them exactly."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, classes))
    p = C.softmax(logits, t_true)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return logits, labels


def test_the_fitted_temperature_recovers_the_one_the_labels_were_drawn_with():
    for t_true in (0.7, 1.0, 2.5):
        logits, labels = sampled(t_true)
        t = C.fit_temperature(logits, labels)
        assert abs(t - t_true) / t_true < 0.05, (t, t_true)
        assert C.nll(logits, labels, t) <= C.nll(logits, labels, t * 1.1)
        assert C.nll(logits, labels, t) <= C.nll(logits, labels, t / 1.1)


def test_the_ece_fit_finds_the_least_ece_near_the_true_temperature():
    logits, labels = sampled(1.8, n=5000, seed=3)
    t = C.fit_temperature_ece(logits, labels)
    best = C.ece(C.softmax(logits, t), labels)
    assert abs(t - 1.8) / 1.8 < 0.1, t
    assert best <= C.ece(C.softmax(logits, C.fit_temperature(logits, labels)), labels)  # never worse than NLL's
    for other in np.exp(np.linspace(np.log(0.25), np.log(4.0), 97)):  # nor than any T of a coarser grid
        assert best <= C.ece(C.softmax(logits, other), labels) + 1e-12
    block = C.fit_calibration(logits, labels, np.zeros((len(labels), 1, 8, 8)), "test", "ece")
    assert block["temperature"] == t and block["temperature_fit"] == "ece"


def test_the_report_reliability_bins_add_up_to_the_ece():
    from training.report import reliability

    logits, labels = sampled(1.0, n=3000, seed=4)
    probs = C.softmax(logits, 0.6)  # over-confident: bins below the diagonal
    bins = reliability(probs, labels)
    assert len(bins) == C.ECE_BINS and sum(b["count"] for b in bins) == len(labels)
    gap = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / len(labels)
    assert gap == pytest.approx(C.ece(probs, labels), abs=1e-3)  # the bins are rounded to 4 decimals
    assert all(b["accuracy"] is None for b in bins if not b["count"])


def test_ece_is_small_for_calibrated_scores_and_large_for_over_confident_ones():
    logits, labels = sampled(1.5)
    assert C.ece(C.softmax(logits, 1.5), labels) < 0.015
    assert C.ece(C.softmax(logits, 0.5), labels) > 0.1


def test_ece_by_hand():
    # two examples at confidence 0.9 (one right), two at 0.6 (both right): bins (0.8667, 0.9333] and (0.6, 0.6667]?
    # 0.6 falls in (0.5333, 0.6]: |1 - 0.6| * 0.5 + |0.5 - 0.9| * 0.5 = 0.4
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    assert C.ece(probs, labels) == pytest.approx(0.4)


def test_auroc_and_fpr_at_95_tpr():
    a = np.arange(100.0)
    assert C.auroc(a, a + 1000) == 1.0
    assert C.auroc(a + 1000, a) == 0.0
    assert C.auroc(a, a) == pytest.approx(0.5)
    assert C.auroc(np.zeros(10), np.zeros(5)) == pytest.approx(0.5)  # all ties
    assert C.fpr_at_tpr(a, a + 1000) == 0.0
    assert C.fpr_at_tpr(a, a) == pytest.approx(0.95, abs=0.015)
    t = C.fit_threshold(a)
    assert C.flagged(a, t) == pytest.approx(0.04, abs=0.011)  # the 96th value: 96 of 100 kept


def test_energy_and_msp_scores_rise_for_flat_logits():
    sure, unsure = np.array([[10.0, 0, 0]]), np.array([[1.0, 1, 1]])
    assert C.energy_score(sure)[0] == pytest.approx(-np.log(np.exp(10) + 2))
    assert C.energy_score(unsure)[0] > C.energy_score(sure)[0]
    assert C.msp_score(unsure)[0] > C.msp_score(sure)[0]


def test_cosine_scores_by_class_means():
    feats = np.array([[1.0, 0], [2.0, 0], [0, 1.0], [0, 3.0]])
    means = C.class_means(feats, np.array([0, 0, 1, 1]), 2)
    assert np.allclose(means, np.eye(2))
    assert C.cosine_score(np.array([[5.0, 0]]), means)[0] == pytest.approx(-1)
    assert C.cosine_score(np.array([[1.0, 1]]), means)[0] == pytest.approx(-np.sqrt(0.5))


def test_input_cells_split_rows_and_columns_at_floor_boundaries():
    x = np.arange(2 * 3 * 5 * 7, dtype=np.float64).reshape(2, 3, 5, 7)
    cells = C.input_cells(x, 2)
    m = x.mean(axis=1)
    assert cells.shape == (2, 4)
    assert cells[1, 0] == pytest.approx(m[1, 0:2, 0:3].mean())
    assert cells[1, 3] == pytest.approx(m[1, 2:5, 3:7].mean())


def test_the_ood_fit_keeps_95_percent_of_in_distribution_and_flags_what_looks_otherwise():
    rng = np.random.default_rng(1)
    n = 4000
    inputs = np.zeros((n, 3, 16, 16))
    inputs[:, :, 4:12, 4:12] = rng.normal(1, 0.3, (n, 1, 8, 8))  # an object on a black background
    logits = rng.normal(0, 1, (n, 5))
    logits[np.arange(n), rng.integers(0, 5, n)] += 8  # confident
    ood = C.fit_ood(logits, inputs)
    assert C.flagged(C.ood_score(ood, logits, inputs), ood["threshold"]) == pytest.approx(0.05, abs=0.005)
    fresh = np.array(inputs[:200])
    fresh_logits = np.array(logits[:200])
    flat = np.full_like(fresh, 0.7)  # no background: the input score
    unsure = rng.normal(0, 1, (200, 5))  # no confident class: the energy
    assert C.flagged(C.ood_score(ood, fresh_logits, flat), ood["threshold"]) > 0.95
    assert C.flagged(C.ood_score(ood, unsure, fresh), ood["threshold"]) > 0.95
    assert len(ood["input"]["mean"]) == C.GRID * C.GRID
    block = C.fit_calibration(logits, logits.argmax(1), inputs, "test")
    m = C.calibration_metrics(block, logits, logits.argmax(1), inputs, {"flat": (fresh_logits, flat)})
    assert m["ood"]["flat"]["auroc"] > 0.95 and m["top1"] == 1.0


def test_served_outputs_are_served_forward_and_its_penultimate_activations():
    torch.manual_seed(0)
    model = build_model("alexnet", 10, 64, width=0.125).eval()
    layers = fold_and_quantize(model)
    x = torch.randn(5, 3, 64, 64)
    logits, feats = C.served_outputs(layers, x, batch=2)
    assert torch.equal(logits, served_forward(layers, x))
    assert feats.shape == (5, C.head(layers)["q"].shape[1]) and (feats >= 0).all()
    assert torch.equal(torch.as_tensor(C.react_logits(layers, feats, 1e9)).float(), logits)


@pytest.mark.skipif(importlib.util.find_spec("PIL") is None, reason="needs Pillow")
def test_drawn_characters_and_synthetic_pictures_become_model_inputs():
    from training import ood_sets as O

    chars = O.characters(count=8)
    assert all(img.shape == (28, 28) and img.dtype == np.uint8 and img.max() > 64 for _, img in chars)
    assert all(img[0].max() == 0 and img[:, 0].max() < 64 for _, img in chars)  # white on black
    synth = O.synthetic(per_kind=2)
    assert len(synth) == 10
    manifest = {
        "input": {"height": 64, "width": 64},
        "preprocess": {
            "color": "gray",
            "resize": {"shorter_side": 64},
            "scale": 255,
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
        },
    }
    x = O.to_inputs(synth + chars, manifest)
    assert x.shape == (18, 3, 64, 64)
    assert torch.equal(x, O.to_inputs(O.synthetic(per_kind=2) + O.characters(count=8), manifest))  # seeded
    flat_black = O.to_input(np.zeros((30, 90, 3), np.uint8), manifest["preprocess"], (64, 64))
    assert torch.allclose(flat_black, torch.full((3, 64, 64), -1.0))
    assert O.crop_offset(91, 64) == 14 and O.crop_offset(93, 64) == 14  # 13.5 -> 14, 14.5 -> 14 (half to even)
