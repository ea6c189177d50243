"""The manifest's training record: the recipe as applied, fine-tuning sources, and chains of training cycles."""

import json
import os

from training import lineage


def config(**kw):
    cfg = {
        "arch": "alexnet", "batch_size": 128, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
        "schedule": "cosine", "warmup_epochs": 0.5, "label_smoothing": 0.1, "width": 1.0, "two_tower": False,
        "batch_norm": True, "lr_min": 0.0, "swa_epochs": 0, "dropout": -1.0, "dataset": "fashion-mnist",
        "pad_crop": 2, "random_erase": 0.0, "pca_sigma": 0.1, "init": "", "freeze_features": False,
        "head_lr_ratio": 10.0, "source_input": "torchvision", "seed": 0, "input_size": 64, "note": "",
    }  # fmt: skip
    cfg.update(kw)
    return cfg


def test_a_fresh_run_records_its_recipe_and_counts_its_epochs_and_seconds():
    history = [{"epoch": 1, "epoch_seconds": 10.04}, {"epoch": 2, "epoch_seconds": 20.02}]
    rec = lineage.training_record(config(note="first"), history, "cpu")
    assert (rec["arch"], rec["epochs"], rec["wall_seconds"], rec["device"], rec["note"]) == (
        "alexnet",
        2,
        30.1,
        "cpu",
        "first",
    )
    recipe = rec["recipe"]
    assert recipe["dropout"] == 0.5 and recipe["optimizer"] == "sgd"  # -1: the paper's own dropout
    assert recipe["augmentation"] == "random crop of the 28x28 image padded by 2, horizontal flip"
    assert "lr_min" not in recipe and "weight_averaging" not in recipe and "freeze_features" not in recipe
    assert "continues" not in rec and "initialised_from" not in rec


def test_the_recipe_names_only_what_was_applied():
    recipe = lineage.recipe(config(schedule="cyclic", lr_min=0.001, swa_epochs=3, random_erase=0.25, arch="alexnet-bn"))
    assert recipe["lr_min"] == 0.001 and "last 3 epochs" in recipe["weight_averaging"]
    assert recipe["augmentation"].endswith("random erasing p=0.25") and recipe["dropout"] == 0.4
    folder = lineage.recipe(config(dataset="/data/flowers", pca_sigma=0.2))
    assert folder["augmentation"] == "random crop, horizontal flip, PCA colour noise sigma 0.2"


def test_fine_tuning_names_its_source_and_how_the_loaded_layers_were_trained():
    rec = lineage.training_record(config(init="/hub/alexnet-owt.pth", freeze_features=True), [], "cpu")
    assert rec["initialised_from"] == "alexnet-owt.pth" and rec["epochs"] == 0
    assert (rec["recipe"]["freeze_features"], rec["recipe"]["head_lr_ratio"]) == (True, 10.0)


def write_package(root, name, training):
    os.makedirs(root / name)
    with open(root / name / "manifest.json", "w") as f:
        json.dump({"training": training}, f)
    return str(root / name)


def test_a_chain_of_cycles_adds_the_nearest_packages_totals_to_the_checkpoint_histories(tmp_path):
    first = {"epochs": 20, "wall_seconds": 5400.0, "recipe": {"lr": 0.05}}
    v4 = write_package(tmp_path, "v4", first)
    from_v4 = lineage.from_package(v4)
    assert from_v4 == {"package": "v4", "epochs": 20, "wall_seconds": 5400.0, "recipe": {"lr": 0.05}, "earlier": None}
    # v5 continued v4 for 15 epochs; its checkpoint holds those 15 rows and the lineage
    v5 = {"config": config(lr=0.02), "history": [{"epoch_seconds": 100.0}] * 15, "lineage": from_v4}
    from_v5 = lineage.from_checkpoint("runs/v5/ckpt.pt", v5)
    assert (from_v5["checkpoint"], from_v5["epochs"], from_v5["recipe"]["lr"]) == ("runs/v5/ckpt.pt", 15, 0.02)
    assert from_v5["earlier"] == from_v4 and "freeze_features" not in from_v5["recipe"]
    assert lineage.nearest_package(from_v5) == from_v4
    # v6 ran 5 more epochs on v5's checkpoint: its history holds all 20 of v5's run and its own 5
    history = v5["history"] + [{"epoch_seconds": 50.0}] * 5
    rec = lineage.training_record(config(init="runs/v5/ckpt.pt"), history, "cpu", from_v5)
    assert rec["continues"] == from_v5 and "initialised_from" not in rec
    assert rec["epochs"] == 20 + 20 and rec["wall_seconds"] == 5400.0 + 1500.0 + 250.0


def test_a_chain_of_checkpoints_only_counts_the_history_it_carries():
    chain = {"checkpoint": "b.pt", "epochs": 3, "recipe": {}, "earlier": {"checkpoint": "a.pt", "epochs": 2}}
    assert lineage.nearest_package(chain) is None and lineage.nearest_package(None) is None
    rec = lineage.training_record(config(init="b.pt"), [{"epoch_seconds": 1.0}] * 4, "cpu", chain)
    assert rec["epochs"] == 4 and rec["wall_seconds"] == 4.0
