r"""Evaluate a Fashion-MNIST model package as served (int8): accuracy, per-class precision and recall, calibration
(ECE before and after temperature scaling) and how well it tells pictures it was never trained on apart.

  # measure a calibrated package; the report goes beside it: model/<id>.evaluation.json and .md
  nice -n 10 /usr/bin/python3 scripts/evaluate_package.py model/alexnet-fmnist-64-v8

  # calibrate a package that saw all 60,000 training images on test images 0-4999, report on 5000-9999, and
  # write the calibrated copy under a new id (weights byte for byte; packages are immutable by id), with its
  # report.json and thumbnails.png (training/report.py); the default model v8 was made so from v7
  # (v6's weights, calibrated by NLL; in git history), with --cache /tmp/v7-cache.pt
  nice -n 10 /usr/bin/python3 scripts/evaluate_package.py model/alexnet-fmnist-64-v7 --calibrate \
      --temperature-fit ece --export-dir model/alexnet-fmnist-64-v8

Everything is computed in the served int8 arithmetic (training/quantize.py). The out-of-distribution sets
(training/ood_sets.py) are scikit-image's photographs (python3-skimage), synthetic pictures and drawn letters
and digits, preprocessed as the Worker does; the report also holds the candidate OOD scores measured on the
same images (training/calibration.py), the table the method was chosen from.
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training import calibration as C  # noqa: E402
from training import data as D  # noqa: E402
from training import ood_sets as O  # noqa: E402
from training.class_report import per_class  # noqa: E402
from training.report import attach_report, build_report, read_metrics_csv  # noqa: E402


def span(text: str) -> tuple:
    a, b = (int(v) for v in text.split(":"))
    if not 0 <= a < b:
        raise argparse.ArgumentTypeError(f"{text!r}: expected START:END with 0 <= START < END")
    return a, b


def candidates(layers, fit: dict, ev: dict, sets: dict, labels: np.ndarray, classes: int) -> list:
    """AUROC / FPR@95 / flagged per set, and flagged in-distribution, for every candidate score: the table the
    method was picked from. `fit`/`ev`/sets[name] hold logits, features and inputs."""
    t = C.fit_temperature(fit["logits"], labels)
    means = C.class_means(fit["features"], labels, classes)
    ood = C.fit_ood(fit["logits"], fit["inputs"])
    input_only = dict(ood, energy=dict(ood["energy"], median=0.0, scale=1e30))
    clips = {p: float(np.percentile(fit["features"], p)) for p in (90, 99)}
    scores = {
        "msp (T=1)": lambda d: C.msp_score(d["logits"]),
        "msp (calibrated T)": lambda d: C.msp_score(d["logits"], t),
        "energy (T=1)": lambda d: C.energy_score(d["logits"]),
        "energy (calibrated T)": lambda d: C.energy_score(d["logits"], t),
        "react p90 + energy": lambda d: C.energy_score(
            C.react_logits(layers, torch.as_tensor(d["features"]), clips[90])
        ),
        "react p99 + energy": lambda d: C.energy_score(
            C.react_logits(layers, torch.as_tensor(d["features"]), clips[99])
        ),
        "cosine to class means (fc7)": lambda d: C.cosine_score(d["features"], means),
        "input 8x8 z-score": lambda d: C.ood_score(input_only, d["logits"], d["inputs"]),
        "energy+input (chosen)": lambda d: C.ood_score(ood, d["logits"], d["inputs"]),
    }
    rows = []
    for name, fn in scores.items():
        thr = C.fit_threshold(fn(fit))
        s_in = fn(ev)
        row = {"score": name, "in_distribution_flagged": round(C.flagged(s_in, thr), 4)}
        for set_name, d in sets.items():
            s = fn(d)
            row[set_name] = {
                "auroc": round(C.auroc(s_in, s), 4),
                "fpr_at_95_tpr": round(C.fpr_at_tpr(s_in, s), 4),
                "flagged_unknown": round(C.flagged(s, thr), 4),
            }
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    m = report["metrics"]
    lines = [
        f"# {report['id']}: evaluation as served (int8)",
        "",
        f"Calibration fitted on {report['fitted_on']}; every figure below on {m['dataset']} ({m['count']} images).",
        "",
        "| | value |",
        "|---|---|",
        f"| top-1 | {m['top1']:.4f} |",
        f"| ECE (15 bins), raw softmax | {m['ece'] * 100:.2f}% |",
        f"| ECE, softmax(logits / T), T = {report['temperature']:.4f} | {m['ece_calibrated'] * 100:.2f}% |",
        f"| NLL raw / calibrated | {m['nll']:.4f} / {m['nll_calibrated']:.4f} |",
        f"| in-distribution flagged unknown | {m['flagged_unknown'] * 100:.1f}% |",
        "",
        f"## Out of distribution: `{report['ood_method']}`, threshold {report['threshold']:.4f} (95% TPR)",
        "",
        "| set | images | AUROC | FPR@95%TPR | flagged unknown |",
        "|---|---|---|---|---|",
    ]
    for name, r in m.get("ood", {}).items():
        lines.append(
            f"| {name} | {r['count']} | {r['auroc']:.4f} | {r['fpr_at_95_tpr'] * 100:.1f}% | "
            f"{r['flagged_unknown'] * 100:.1f}% |"
        )
    lines += ["", "## Per class", "", "| class | support | precision | recall |", "|---|---|---|---|"]
    for r in report["per_class"]:
        lines.append(f"| {r['label']} | {r['support']} | {r['precision']:.4f} | {r['recall']:.4f} |")
    if report.get("candidates"):
        sets = [k for k in report["candidates"][0] if isinstance(report["candidates"][0][k], dict)]
        lines += [
            "",
            "## Candidate OOD scores (AUROC / flagged at the 95% TPR threshold)",
            "",
            "| score | in-distribution flagged | " + " | ".join(sets) + " |",
            "|---|---|" + "---|" * len(sets),
        ]
        for r in report["candidates"]:
            cells = [f"{r[s]['auroc']:.3f} / {r[s]['flagged_unknown'] * 100:.1f}%" for s in sets]
            lines.append(f"| {r['score']} | {r['in_distribution_flagged'] * 100:.1f}% | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("package", help="a Fashion-MNIST model package directory, e.g. model/alexnet-fmnist-64-v8")
    ap.add_argument("--calibrate", action="store_true", help="fit the calibration (on --fit) and write a new package")
    ap.add_argument("--export-dir", default="", help="with --calibrate: the new package's directory (its id: the name)")
    ap.add_argument(
        "--fit",
        type=span,
        default=(0, 5000),
        help="test images the calibration is fitted on, FIRST:END (default: 0:5000)",
    )
    ap.add_argument(
        "--eval",
        type=span,
        default=(5000, 10000),
        help="test images every figure is reported on, FIRST:END (default: 5000:10000)",
    )
    ap.add_argument(
        "--fmnist-dir", default=D.FMNIST_DIR, help="the directory of the Fashion-MNIST IDX files (default: %(default)s)"
    )
    ap.add_argument(
        "--ood-scale",
        type=float,
        default=1.0,
        help="share of each OOD set to build; the tests use 0.1 (default: %(default)s)",
    )
    ap.add_argument(
        "--temperature-fit",
        choices=sorted(C.TEMPERATURE_FITS),
        default="nll",
        help="with --calibrate: choose T by least NLL or least ECE (15 bins) on --fit (default: %(default)s)",
    )
    ap.add_argument(
        "--metrics-csv",
        default="",
        help="with --calibrate: the training curves for the report (default: <package>.metrics.csv when it exists)",
    )
    ap.add_argument("--no-candidates", action="store_true", help="skip the table of candidate OOD scores")
    ap.add_argument("--note", default="", help="with --calibrate: appended to the manifest's calibration.fitted_on")
    ap.add_argument(
        "--cache",
        default="",
        help="a .pt file of the test images' served logits and fc7 activations: read if it exists, else written "
        "(the forward pass over 10,000 images is most of the run; the file is only valid for this package)",
    )
    ap.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads, 0 for torch's own choice (default: %(default)s)"
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.calibrate and not args.export_dir:
        ap.error("--calibrate needs --export-dir (packages are immutable: the calibrated one gets a new id)")
    manifest, layers = C.load_served(args.package)
    if not args.calibrate and "calibration" not in manifest:
        ap.error(f"{args.package} has no calibration; give --calibrate --export-dir DIR to fit one")
    arithmetic = C.served_arithmetic(manifest)
    size = manifest["input"]["height"]
    lo, hi = min(args.fit[0], args.eval[0]), max(args.fit[1], args.eval[1])
    test = D.FashionMNIST(args.fmnist_dir, "test", size, False, 0, hi)
    x = torch.stack([test[i][0] for i in range(lo, hi)])
    y = test.labels[lo:hi].numpy()
    print(f"served int8 outputs of test images {lo}-{hi - 1}", flush=True)
    if args.cache and os.path.exists(args.cache):
        cached = torch.load(args.cache)
        logits, feats = cached["logits"][lo:hi], cached["features"][lo:hi]
        if not torch.equal(cached["labels"][lo:hi], test.labels[lo:hi]):
            ap.error(f"{args.cache} holds other test images")
        check, _ = C.served_outputs(layers, x[:8], **arithmetic)
        if not torch.equal(check, logits[:8]):
            ap.error(f"{args.cache} holds another package's logits")
    else:
        logits, feats = C.served_outputs(layers, x, **arithmetic)
        if args.cache:
            torch.save({"logits": logits, "features": feats, "labels": test.labels[lo:hi]}, args.cache)

    def part(a, b):
        return {
            "logits": logits[a - lo : b - lo].double().numpy(),
            "features": feats[a - lo : b - lo].numpy(),
            "inputs": x[a - lo : b - lo].numpy(),
            "labels": y[a - lo : b - lo],
        }

    fit, ev = part(*args.fit), part(*args.eval)
    sets = {}
    for name, build in O.SETS.items():
        kw = {
            "photographs": {"crops": max(1, round(10 * args.ood_scale))},
            "synthetic": {"per_kind": max(1, round(40 * args.ood_scale))},
            "characters": {"count": max(1, round(300 * args.ood_scale))},
        }[name]
        images = build(**kw)
        xs = O.to_inputs(images, manifest)
        lg, f = C.served_outputs(layers, xs, **arithmetic)
        sets[name] = {
            "logits": lg.double().numpy(),
            "features": f.numpy(),
            "inputs": xs.numpy(),
            "names": [n for n, _ in images],
        }
        print(f"{name}: {len(images)} images", flush=True)
    fitted_on = f"fashion-mnist/test images {args.fit[0]}-{args.fit[1] - 1}" + (f" ({args.note})" if args.note else "")
    if args.calibrate:
        block = C.fit_calibration(fit["logits"], fit["labels"], fit["inputs"], fitted_on, args.temperature_fit)
    else:
        block = manifest["calibration"]
    metrics = C.calibration_metrics(
        block, ev["logits"], ev["labels"], ev["inputs"], {k: (d["logits"], d["inputs"]) for k, d in sets.items()}
    )
    metrics = dict({"dataset": f"fashion-mnist/test images {args.eval[0]}-{args.eval[1] - 1}"}, **metrics)
    confusion = torch.zeros(len(manifest["labels"]), len(manifest["labels"]), dtype=torch.int64)
    for t, p in zip(ev["labels"], ev["logits"].argmax(1), strict=True):
        confusion[t, p] += 1
    out_dir = args.export_dir if args.calibrate else args.package
    model_id = os.path.basename(os.path.normpath(out_dir))
    report = {
        "id": model_id,
        "fitted_on": block["fitted_on"],
        "temperature": block["temperature"],
        "ood_method": block["ood"]["method"],
        "threshold": block["ood"]["threshold"],
        "metrics": metrics,
        "per_class": per_class(confusion, manifest["labels"]),
    }
    if not args.no_candidates:
        report["candidates"] = candidates(layers, fit, ev, sets, fit["labels"], len(manifest["labels"]))
    if args.calibrate:
        block = dict(block, metrics=metrics)
        chosen = [sets["photographs"]["names"].index("chelsea"), sets["synthetic"]["names"].index("checker0")]
        extra = np.stack([sets["photographs"]["inputs"][chosen[0]], sets["synthetic"]["inputs"][chosen[1]]])
        if "calibration" in manifest:  # a recalibration: the source's samples hold these two already
            extra = None
        C.calibrated_package(args.package, out_dir, model_id, block, extra)
        csv_path = args.metrics_csv or os.path.normpath(args.package) + ".metrics.csv"
        history = read_metrics_csv(csv_path) if os.path.exists(csv_path) else None
        card, png = build_report(
            manifest["labels"],
            ev["logits"],
            ev["labels"],
            ev["inputs"],
            manifest["preprocess"],
            metrics["dataset"],
            block,
            history,
        )
        attach_report(out_dir, card, png)
        print(f"wrote {out_dir} (calibration fitted on {fitted_on})", flush=True)
    base = os.path.normpath(out_dir)
    C.write_json(base + ".evaluation.json", report)
    with open(base + ".evaluation.md", "w") as f:
        f.write(markdown(report))
    print(markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
