"""Calibrated scores and an "unknown" answer for a served int8 model (the manifest's `calibration` block).

Everything here is fitted on the logits the Worker computes (training/quantize.py's `served_forward`), never
on the fp32 network's, so the numbers the manifest carries hold for what is served:

- temperature scaling (Guo et al. 2017, arXiv:1706.04599): one scalar T > 0, fitted by minimising the
  negative log-likelihood of held-out labels under softmax(logits / T) ("nll"), or their ECE ("ece": what the
  default model ships, see TEMPERATURE_FITS); it changes no top-1.
- ECE: expected calibration error of the top score in 15 equal-width bins (Guo et al.'s definition).
- out-of-distribution scores, higher = less like the training data, from what the Worker already has:
  `msp` (minus the top calibrated probability), `energy` (-T logsumexp(logits / T), Liu et al. 2020,
  arXiv:2010.03759), `react` (energy of the logits recomputed from the penultimate activations clipped at a
  high percentile, Sun et al. 2021, arXiv:2111.12797) and `cosine` (minus the best cosine similarity of the
  L2-normalised penultimate activations to the per-class means).
- `energy+input`, what the exporter writes (chosen by measurement, see METHOD below): the larger of the
  energy and a z-score of the preprocessed input's 8x8 cell means, each in units of its in-distribution spread.
- a threshold at the `tpr` quantile of held-out in-distribution scores (95%: 95% of in-distribution images
  are kept, 5% flagged "unknown"), and the AUROC and FPR at 95% TPR that compare score families.
"""

import json
import os

import numpy as np
import torch

from training.quantize import SYMMETRIC, dense_int8, served_forward

ECE_BINS = 15
TPR = 0.95


# ----------------------------------------------------------------------------- the served model
def load_served(pkg_dir: str) -> tuple:
    """(manifest, served layers) of a package directory, its weights checked against the manifest."""
    from training.init_weights import init_from_package
    from training.model import build_model
    from training.package import load_package
    from training.quantize import fold_and_quantize

    manifest = load_package(pkg_dir)[0]
    model = build_model("alexnet", len(manifest["labels"]), manifest["input"]["height"])
    init_from_package(model, pkg_dir)
    return manifest, fold_and_quantize(model.eval())


def served_arithmetic(manifest: dict) -> dict:
    """served_forward's keyword arguments for a manifest's quantization block."""
    q = manifest.get("quantization", {})
    return {"convolutions": q.get("convolutions", "fp32"), "conv_activations": q.get("conv_activations", SYMMETRIC)}


def head(layers: list) -> dict:
    """The last dense layer (the one that makes logits)."""
    return [layer for layer in layers if layer["op"] == "dense"][-1]


@torch.no_grad()
def served_outputs(layers: list, x: torch.Tensor, batch: int = 250, **arithmetic) -> tuple:
    """(logits, penultimate activations) of NCHW inputs in the served arithmetic, as float32 tensors.

    The penultimate activations are the input of the last dense layer (fc7 after its ReLU); the logits are
    that layer's served int8 output, identical to `served_forward(layers, x)`.
    """
    last = max(i for i, layer in enumerate(layers) if layer["op"] == "dense")
    logits, feats = [], []
    for i in range(0, len(x), batch):
        f = served_forward(layers[:last], x[i : i + batch], **arithmetic)
        feats.append(f)
        logits.append(head_logits(layers, f))
    return torch.cat(logits), torch.cat(feats)


def head_logits(layers: list, features: torch.Tensor) -> torch.Tensor:
    """The last dense layer of the served arithmetic on (possibly clipped) penultimate activations."""
    h = head(layers)
    return dense_int8(features.float(), h["q"], h["scale"], h["bias"])


# ----------------------------------------------------------------------------- temperature and ECE
def log_softmax(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / t
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(logits, t))


def nll(logits: np.ndarray, labels: np.ndarray, t: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / t)."""
    lp = log_softmax(logits, t)
    return float(-lp[np.arange(len(labels)), np.asarray(labels)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T in [lo, hi] that minimises the NLL of softmax(logits / T): golden-section search on log T (the NLL
    is convex in 1 / T, so unimodal in log T), to a relative precision of 1e-6."""
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, labels, np.exp(c)), nll(logits, labels, np.exp(d))
    while b - a > 1e-6:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, labels, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, labels, np.exp(d))
    return float(np.exp((a + b) / 2))


def fit_temperature_ece(logits: np.ndarray, labels: np.ndarray, lo: float = 0.25, hi: float = 4.0) -> float:
    """The T in [lo, hi] with the least ECE (15 bins) of softmax(logits / T). ECE is a step function of T (an
    image moving between bins changes it at once), so no descent applies: a grid of 2001 values of log T
    (steps of 0.14%), the smallest T of the best ties (the one nearest the NLL fit, which is below 1 here)."""
    ts = np.exp(np.linspace(np.log(lo), np.log(hi), 2001))
    errors = [ece(softmax(logits, t), labels) for t in ts]
    return float(ts[int(np.argmin(errors))])


# How the temperature is chosen: "nll" (Guo et al.'s own choice) is smooth and cannot overfit one number, but
# its optimum is not the least ECE: on alexnet-fmnist-64-v6 it left ECE at 1.70% on test images 5000-9999,
# the ECE fit 1.40% (docs/model-package.md, "calibration").
TEMPERATURE_FITS = {"nll": fit_temperature, "ece": fit_temperature_ece}


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top score: sum over equal-width confidence bins of
    |accuracy - mean confidence| weighted by the bin's share of examples (bins are (lo, hi], the first [0, hi])."""
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


# ----------------------------------------------------------------------------- OOD scores
def logsumexp(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1))


def msp_score(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    """Minus the maximum softmax probability (Hendrycks & Gimpel 2017) of softmax(logits / t)."""
    return -softmax(logits, t).max(axis=1)


def energy_score(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    """The free energy -t logsumexp(logits / t) (Liu et al. 2020): low for what the model knows."""
    return -t * logsumexp(np.asarray(logits, dtype=np.float64) / t)


def react_logits(layers: list, features: torch.Tensor, clip: float) -> np.ndarray:
    """The served last layer on the penultimate activations clipped at `clip` (ReAct, Sun et al. 2021)."""
    return head_logits(layers, torch.clamp(features.float(), max=float(clip))).double().numpy()


def class_means(features: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """[classes, D] unit vectors: the mean of each class's L2-normalised penultimate activations, normalised."""
    f = l2_normalise(features)
    means = np.stack([f[np.asarray(labels) == c].mean(axis=0) for c in range(classes)])
    return l2_normalise(means)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def cosine_score(features: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Minus the largest cosine similarity of the L2-normalised activations to a class mean."""
    return -(l2_normalise(features) @ np.asarray(means, dtype=np.float64).T).max(axis=1)


# ----------------------------------------------------------------------------- thresholds and metrics
def fit_threshold(in_scores: np.ndarray, tpr: float = TPR) -> float:
    """The score at which a share `tpr` of in-distribution images score <= it (kept); higher is flagged."""
    return float(np.quantile(np.asarray(in_scores, dtype=np.float64), tpr, method="higher"))


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """P(an OOD image scores higher than an in-distribution one), ties counting one half (Mann-Whitney U)."""
    a = np.asarray(in_scores, dtype=np.float64)
    b = np.asarray(out_scores, dtype=np.float64)
    both = np.concatenate([a, b])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    sorted_vals = both[order]  # average the ranks of ties
    _, start, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    for s, c in zip(start, counts, strict=True):
        if c > 1:
            ranks[order[s : s + c]] = s + (c + 1) / 2
    u = ranks[len(a) :].sum() - len(b) * (len(b) + 1) / 2
    return float(u / (len(a) * len(b)))


def fpr_at_tpr(in_scores: np.ndarray, out_scores: np.ndarray, tpr: float = TPR) -> float:
    """The share of OOD images kept (not flagged) at the threshold that keeps `tpr` of in-distribution ones."""
    return float((np.asarray(out_scores) <= fit_threshold(in_scores, tpr)).mean())


def flagged(scores: np.ndarray, threshold: float) -> float:
    """The share of images whose score is above the threshold (answered "unknown")."""
    return float((np.asarray(scores) > threshold).mean())


# ----------------------------------------------------------------------------- the input's layout
def input_cells(x, grid: int) -> np.ndarray:
    """[N, grid * grid]: the preprocessed input averaged over channels and over a grid x grid of cells, cell
    (i, j) holding rows floor(i H / grid) .. floor((i + 1) H / grid) - 1 and the same for columns. x is NCHW."""
    x = np.asarray(x, dtype=np.float64).mean(axis=1)
    h, w = x.shape[1:]
    rows = [(i * h // grid, (i + 1) * h // grid) for i in range(grid)]
    cols = [(j * w // grid, (j + 1) * w // grid) for j in range(grid)]
    return np.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for r0, r1 in rows for c0, c1 in cols], axis=1)


def input_score(x, mean, std, grid: int, eps: float) -> np.ndarray:
    """Mean squared z-score of the input's cells against the in-distribution cells' mean and std (+ eps, so a
    cell that never varies, Fashion-MNIST's black border, allows small deviations such as JPEG noise)."""
    z = (input_cells(x, grid) - np.asarray(mean)) / (np.asarray(std) + eps)
    return (z**2).mean(axis=1)


# ----------------------------------------------------------------------------- the chosen method
# "energy+input" (what `fit_calibration` writes): the larger of two scores, each in units of its own
# in-distribution spread, (s - median) / (95th percentile - median):
#  - energy: -logsumexp(logits) (Liu et al. 2020, T = 1): what the network makes of the picture;
#  - input: how far the preprocessed picture's 8x8 cell means lie from the training images' (mean squared
#    z-score): what the network never saw at all (a photograph, a flat colour: no black background).
# Measured on alexnet-fmnist-64-v6 (docs/model-package.md, "calibration"): energy alone AUROC 0.79 on
# photographs, the input alone 0.71 on drawn characters; their maximum 0.99 / 0.99 / 0.90.
METHOD = "energy+input"
GRID = 8
EPS = 0.1


def _spread(scores: np.ndarray) -> dict:
    median, q95 = np.quantile(scores, 0.5), np.quantile(scores, TPR)
    return {"median": float(median), "scale": float(max(q95 - median, 1e-12))}


def ood_score(ood: dict, logits, inputs) -> np.ndarray:
    """The manifest's ood_score (higher = less like the training data) of served logits [N, classes] and
    preprocessed inputs [N, C, H, W]."""
    if ood["method"] != METHOD:
        raise ValueError(f"unknown OOD method {ood['method']!r} (this exporter writes {METHOD!r})")
    e, i = ood["energy"], ood["input"]
    se = energy_score(np.asarray(logits, dtype=np.float64), e["temperature"])
    si = input_score(inputs, i["mean"], i["std"], i["grid"], i["eps"])
    return np.maximum((se - e["median"]) / e["scale"], (si - i["median"]) / i["scale"])


def fit_ood(logits, inputs, grid: int = GRID, eps: float = EPS, tpr: float = TPR) -> dict:
    """The manifest's `calibration.ood` from held-out in-distribution logits and inputs (NCHW)."""
    cells = input_cells(inputs, grid)
    mean, std = cells.mean(axis=0), cells.std(axis=0)
    energy = {"temperature": 1.0}
    energy.update(_spread(energy_score(np.asarray(logits, dtype=np.float64), 1.0)))
    inp = {
        "grid": grid,
        "eps": eps,
        "mean": [round(float(v), 6) for v in mean],
        "std": [round(float(v), 6) for v in std],
    }
    inp.update(_spread(input_score(inputs, inp["mean"], inp["std"], grid, eps)))
    ood = {"method": METHOD, "threshold": 0.0, "tpr": tpr, "energy": energy, "input": inp}
    ood["threshold"] = fit_threshold(ood_score(ood, logits, inputs), tpr)
    return ood


def fit_calibration(logits, labels, inputs, fitted_on: str, temperature_fit: str = "nll") -> dict:
    """The manifest's calibration block (without metrics): T by `temperature_fit` (TEMPERATURE_FITS), the OOD
    score and its threshold at 95% TPR, all on the same held-out in-distribution images."""
    logits = np.asarray(logits, dtype=np.float64)
    t = TEMPERATURE_FITS[temperature_fit](logits, labels)
    return {
        "temperature": t,
        "temperature_fit": temperature_fit,
        "ood": fit_ood(logits, inputs),
        "fitted_on": fitted_on,
    }


def calibration_metrics(block: dict, logits, labels, inputs, ood_sets: dict | None = None) -> dict:
    """Accuracy, ECE before / after, NLL, share flagged of held-out in-distribution images, and per OOD set
    (name -> (logits, inputs)) AUROC, FPR at 95% TPR and share flagged."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    t, ood = block["temperature"], block["ood"]
    s_in = ood_score(ood, logits, inputs)
    out = {
        "count": len(labels),
        "top1": round(float((logits.argmax(1) == labels).mean()), 4),
        "ece": round(ece(softmax(logits), labels), 4),
        "ece_calibrated": round(ece(softmax(logits, t), labels), 4),
        "nll": round(nll(logits, labels), 4),
        "nll_calibrated": round(nll(logits, labels, t), 4),
        "flagged_unknown": round(flagged(s_in, ood["threshold"]), 4),
    }
    if ood_sets:
        out["ood"] = {}
        for name, (lg, x) in ood_sets.items():
            s = ood_score(ood, lg, x)
            out["ood"][name] = {
                "count": len(s),
                "auroc": round(auroc(s_in, s), 4),
                "fpr_at_95_tpr": round(fpr_at_tpr(s_in, s), 4),
                "flagged_unknown": round(flagged(s, ood["threshold"]), 4),
            }
    return out


def write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


# ----------------------------------------------------------------------------- a calibrated copy of a package
def calibrated_package(src_dir: str, dst_dir: str, model_id: str, block: dict, extra_samples=None) -> dict:
    """Write `src_dir`'s package under a new id with the manifest's `calibration` block: weights.safetensors
    byte for byte (same SHA-256), samples.safetensors with `ood_scores` (and `extra_samples`, preprocessed NCHW
    inputs such as a photograph, appended, their logits in the served arithmetic). Returns the manifest."""
    import hashlib
    import shutil

    from training import safetensors_io
    from training.package import ID_PATTERN, load_package

    if not ID_PATTERN.match(model_id):
        raise ValueError(f"model id {model_id!r} does not match {ID_PATTERN.pattern}")
    if os.path.exists(os.path.join(dst_dir, "manifest.json")):
        raise FileExistsError(f"{dst_dir} already holds a package; packages are immutable, choose a new id")
    manifest, _, samples = load_package(src_dir)
    _, layers = load_served(src_dir)
    arithmetic = served_arithmetic(manifest)
    xs = torch.from_numpy(np.array(samples["inputs"])).permute(0, 3, 1, 2)
    if extra_samples is not None and len(extra_samples):
        xs = torch.cat([xs, torch.as_tensor(extra_samples).float()])
    logits, _ = served_outputs(layers, xs, **arithmetic)
    fp32 = served_forward(layers, xs, quantized=False)  # the package's own network in float
    kept = len(samples["inputs"])
    if not torch.equal(logits[:kept], torch.from_numpy(np.array(samples["logits"]))):
        raise ValueError(f"{src_dir}: the served arithmetic no longer reproduces the package's sample logits")
    os.makedirs(dst_dir, exist_ok=True)
    shutil.copyfile(os.path.join(src_dir, manifest["weights"]["file"]), os.path.join(dst_dir, "weights.safetensors"))
    tensors = {
        "inputs": xs.permute(0, 2, 3, 1).contiguous(),
        "logits": logits,
        "logits_fp32": torch.cat([torch.from_numpy(np.array(samples["logits_fp32"])), fp32[kept:]]),
        "ood_scores": torch.from_numpy(ood_score(block["ood"], logits.double().numpy(), xs.numpy())).float(),
    }
    blob = safetensors_io.write(
        os.path.join(dst_dir, "samples.safetensors"), tensors, {"format": manifest["format"], "id": model_id}
    )
    out = dict(manifest, id=model_id)
    out["weights"] = dict(manifest["weights"], file="weights.safetensors")
    out["samples"] = dict(
        manifest["samples"],
        file="samples.safetensors",
        bytes=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        count=len(xs),
    )
    out["calibration"] = block
    out.pop("report", None)  # the source's report card is of its own calibration; the caller attaches a new one
    write_json(os.path.join(dst_dir, "manifest.json"), out)
    return out
