"""The end of a run: evaluate the network in fp32 and in the Worker's served arithmetic, write the package.

Inside the package go its report card (report.json, thumbnails.png: training/report.py); beside it the
per-class report (training/class_report.py), and beside the checkpoint the run's records (metrics.csv,
curves.png, confusion.png of the served model). Export runs in this process alone, on the CPU, whatever the
run trained on.
"""

import os

import numpy as np
import torch

from training import data as D
from training.class_report import per_class, write_class_report
from training.evaluate import evaluate
from training.lineage import training_record
from training.package import export_package
from training.plots import write_run_records
from training.quantize import fold_and_quantize, served_forward
from training.report import attach_report, build_report
from training.runtime import cpu_runtime, make_loader, unwrap


def dataset_name(cfg: dict) -> str:
    if cfg["dataset"] == "fashion-mnist":
        return "fashion-mnist/test"
    return f"{os.path.basename(os.path.normpath(cfg['dataset']))}/val"


def served_set(layers, cfg, ds) -> tuple:
    """(logits as float64 numpy, labels, inputs NCHW numpy) of a dataset in the served arithmetic."""
    from training.calibration import served_outputs

    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = np.asarray([int(ds[i][1]) for i in range(len(ds))])
    logits, _ = served_outputs(layers, x, convolutions=cfg["convolutions"])
    return logits.double().numpy(), y, x.numpy()


def ood_inputs(manifest_like: dict) -> dict:
    """The OOD sets (training/ood_sets.py) as model inputs; a set whose source is missing here is left out."""
    from training import ood_sets as O

    out = {}
    for name, build in O.SETS.items():
        try:
            out[name] = O.to_inputs(build(), manifest_like)
        except (ImportError, FileNotFoundError) as e:
            print(f"export: no {name} OOD set ({type(e).__name__}: {e})", flush=True)
    return out


def calibrate(layers, cfg, val_ds, test: tuple, input_size: int, preprocess: dict) -> dict:
    """The manifest's calibration block: fitted on the held-out training images (--val-fraction), its metrics
    on the test set (`test`: served_set's triple) and the OOD sets, all in the served arithmetic
    (training/calibration.py)."""
    from training import calibration as C

    logits, y, x = served_set(layers, cfg, val_ds)
    block = C.fit_calibration(
        logits,
        y,
        x,
        f"{len(val_ds)} training images held out of training (--val-fraction {cfg['val_fraction']})",
        cfg["temperature_fit"],
    )
    t_logits, t_y, t_x = test
    sets = {}
    manifest_like = {"input": {"height": input_size, "width": input_size}, "preprocess": preprocess}
    for name, xs in ood_inputs(manifest_like).items():
        lg, _ = C.served_outputs(layers, xs, convolutions=cfg["convolutions"])
        sets[name] = (lg.double().numpy(), xs.numpy())
    metrics = C.calibration_metrics(block, t_logits, t_y, t_x, sets)
    block["metrics"] = dict({"dataset": f"{dataset_name(cfg)} ({len(t_y)})"}, **metrics)
    print(
        f"export: calibration T {block['temperature']:.4f}, ECE {metrics['ece']:.4f} -> {metrics['ece_calibrated']:.4f}"
        f", unknown on {metrics['flagged_unknown'] * 100:.1f}% of test images; "
        + ", ".join(f"{k} AUROC {v['auroc']:.3f}" for k, v in metrics.get("ood", {}).items()),
        flush=True,
    )
    return block


def export(model, cfg, rt, test_ds, labels, preprocess, history, trained_on, continues=None, val_ds=None) -> dict:
    """Evaluate fp32 and the served int8 arithmetic on the test set, then write the package; returns its metrics.

    val_ds: training images held out of training (train.py --val-fraction): the calibration is fitted on them
    and written into the manifest; None writes a package without one."""
    model = unwrap(model).to("cpu").float().eval()
    cpu_rt = cpu_runtime(rt)
    loader = make_loader(test_ds, cfg, cpu_rt, False, 0)
    q = fold_and_quantize(model)
    print(f"export: evaluating fp32 and served int8 on {len(test_ds)} test images", flush=True)
    m32 = evaluate(model, loader, cpu_rt, len(labels))

    def served(x):
        return served_forward(q, x, convolutions=cfg["convolutions"])

    m8 = evaluate(model, loader, cpu_rt, len(labels), forward=served)
    metrics = {
        "dataset": f"{dataset_name(cfg)} ({m32['test_count']})",
        "top1_fp32": round(m32["test_top1"], 4),
        "top5_fp32": round(m32["test_top5"], 4),
        "top1_int8": round(m8["test_top1"], 4),
        "top5_int8": round(m8["test_top5"], 4),
    }
    xs = torch.stack([test_ds[i][0] for i in range(min(cfg["samples"], len(test_ds)))])
    training = training_record(cfg, history, trained_on, continues)
    mid = cfg["model_id"] or os.path.basename(os.path.normpath(cfg["export_dir"]))
    if cfg["ten_crop"]:
        m10 = evaluate(model, make_loader(ten_crop_set(cfg, labels), cfg, cpu_rt, False, 0), cpu_rt, len(labels))
        metrics.update(top1_fp32_10crop=round(m10["test_top1"], 4), top5_fp32_10crop=round(m10["test_top5"], 4))
    metrics["per_class_recall"] = [r["recall"] for r in per_class(m8["confusion"], labels)]
    calibration = None
    test = served_set(q, cfg, test_ds)
    if val_ds is not None and len(val_ds):
        calibration = calibrate(q, cfg, val_ds, test, cfg["input_size"], preprocess)
    export_package(
        model,
        cfg["export_dir"],
        mid,
        cfg["input_size"],
        preprocess,
        labels,
        xs,
        metrics,
        training,
        onnx=cfg["onnx"],
        convolutions=cfg["convolutions"],
        calibration=calibration,
    )
    card, png = build_report(labels, *test, preprocess, metrics["dataset"], calibration, history)
    attach_report(cfg["export_dir"], card, png)
    write_run_records(cfg["out"], history, m8["confusion"], labels)
    report = write_class_report(cfg["export_dir"], m8["confusion"], labels)
    print(f"export: per-class precision and recall, confusion matrix: {', '.join(report)}", flush=True)
    print(
        f"export: wrote {cfg['export_dir']}  fp32 top-1 {metrics['top1_fp32']:.4f} top-5 {metrics['top5_fp32']:.4f}"
        f"  int8 top-1 {metrics['top1_int8']:.4f} top-5 {metrics['top5_int8']:.4f}",
        flush=True,
    )
    return metrics


def ten_crop_set(cfg: dict, labels: list):
    """Every validation image as the paper's ten crops (--test-subset does not apply)."""
    mean, std = D.input_stats(cfg["source_input"], cfg["init"])
    return D.ImageFolder(
        cfg["dataset"], "val", cfg["input_size"], False, mean=mean, std=std, classes=labels, ten_crop=True
    )
