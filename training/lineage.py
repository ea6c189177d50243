"""Where a run comes from, as the manifest's `training` record says it.

A run either starts fresh, fine-tunes weights from elsewhere (`initialised_from`), or continues an earlier
training cycle of the same network (`continues`, a warm restart: `--init ckpt.pt`, or `--init PACKAGE` with the
package's classes). A `continues` record names the earlier cycle (its checkpoint or package), its epoch count
and recipe, and through `earlier` the cycle before that, back to the first:

    {"checkpoint": "runs/v5/ckpt.pt", "epochs": 37, "recipe": {...},
     "earlier": {"package": "alexnet-fmnist-64-v4", "epochs": 20, "wall_seconds": 5400.0, "recipe": {...},
                 "earlier": None}}

A checkpoint carries its whole history (earlier cycles' epochs included), a package only its totals: the
record's epochs and wall_seconds add the totals of the nearest package in the chain.
"""

import datetime
import json
import os
import sys

import torch

# what makes two runs the same network: a warm restart takes them from the checkpoint, not the command line
STRUCTURE = ("arch", "two_tower", "width", "input_size", "batch_norm", "dropout")


def recipe(cfg: dict, continues=None) -> dict:
    """The recipe block of the training record: optimiser, schedule, regularisation, augmentation as applied."""
    keys = ("batch_size", "lr", "momentum", "weight_decay", "schedule", "warmup_epochs", "label_smoothing", "width")
    out = {k: cfg[k] for k in keys + ("two_tower", "batch_norm")}
    out["optimizer"] = "sgd"
    if cfg.get("schedule") == "cyclic":
        out["lr_min"] = cfg["lr_min"]
    if cfg.get("swa_epochs"):
        out["weight_averaging"] = (
            f"mean of the weights at the ends of the last {cfg['swa_epochs']} epochs "
            "(Izmailov et al. 2018), BatchNorm statistics measured again on the training set"
        )
    out["dropout"] = cfg["dropout"] if cfg["dropout"] >= 0 else (0.4 if cfg["arch"] == "alexnet-bn" else 0.5)
    if cfg["dataset"] == "fashion-mnist":  # only the augmentation that was applied
        out["augmentation"] = f"random crop of the 28x28 image padded by {cfg['pad_crop']}, horizontal flip"
        if cfg["random_erase"]:
            out["augmentation"] += f", random erasing p={cfg['random_erase']}"
    else:
        out["augmentation"] = f"random crop, horizontal flip, PCA colour noise sigma {cfg['pca_sigma']}"
    if not continues and cfg["init"]:  # fine-tuning: how the loaded layers were treated
        out.update(
            freeze_features=cfg["freeze_features"],
            head_lr_ratio=cfg["head_lr_ratio"],
            source_input=cfg["source_input"],
        )
    return out


def training_record(cfg: dict, history: list, trained_on: str, continues=None) -> dict:
    """The manifest's `training` block; epochs and wall_seconds count every cycle of the lineage."""
    rec = {
        "arch": cfg["arch"],
        "epochs": len(history),
        "seed": cfg["seed"],
        "device": trained_on,
        "torch": torch.__version__.split("+")[0],
        "python": sys.version.split()[0],
        "date": datetime.date.today().isoformat(),
        "input_size": cfg["input_size"],
        "recipe": recipe(cfg, continues),
        "wall_seconds": round(sum(h.get("epoch_seconds", 0) for h in history), 1) if history else 0,
    }
    if continues:
        rec["continues"] = continues
        package = nearest_package(continues)
        if package:  # add the package's totals, which count its own earlier cycles
            rec["epochs"] += package["epochs"]
            rec["wall_seconds"] = round(rec["wall_seconds"] + package["wall_seconds"], 1)
    elif cfg["init"]:
        rec["initialised_from"] = os.path.basename(os.path.normpath(cfg["init"]))
    if cfg["note"]:
        rec["note"] = cfg["note"]
    return rec


def nearest_package(continues):
    """The first package record along the `earlier` chain, or None when every link is a checkpoint."""
    link = continues
    while link and "package" not in link:
        link = link.get("earlier")
    return link or None


def from_checkpoint(path: str, ckpt: dict) -> dict:
    """The `continues` record of a run that goes on from the checkpoint at `path` (loaded as `ckpt`)."""
    prior = ckpt["config"]
    return {
        "checkpoint": path,
        "epochs": len(ckpt["history"]),
        "recipe": recipe(prior, ckpt["lineage"]),
        "earlier": ckpt["lineage"] or None,
    }


def from_package(package_dir: str) -> dict:
    """The `continues` record of a run that goes on from a package on the package's own classes."""
    with open(os.path.join(package_dir, "manifest.json")) as f:
        prior = json.load(f).get("training", {})
    return {
        "package": os.path.basename(os.path.normpath(package_dir)),
        "epochs": prior.get("epochs", 0),
        "wall_seconds": prior.get("wall_seconds", 0),
        "recipe": prior.get("recipe"),
        "earlier": prior.get("continues"),
    }
