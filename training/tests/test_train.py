"""scripts/train.py really trains: the loss falls, a resumed run equals an uninterrupted one, DDP runs."""

import csv
import json
import os
import socket
import subprocess
import sys

import torch

from conftest import ROOT, TINY, needs_fmnist, run_train
from training.package import load_package


def read_history(out):
    with open(os.path.join(out, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def test_a_short_run_on_a_tiny_subset_learns_and_writes_its_records(tmp_path):
    needs_fmnist()
    out = str(tmp_path / "run")
    run_train(TINY + ["--epochs", "3", "--schedule", "cosine", "--out", out])
    rows = read_history(out)
    assert len(rows) == 3
    assert float(rows[-1]["train_loss"]) < 0.8 * float(rows[0]["train_loss"])
    assert float(rows[-1]["test_top1"]) > 0.4  # 10 classes: chance is 0.1
    for name in ("ckpt.pt", "config.json", "curves.png", "confusion.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    assert json.load(open(os.path.join(out, "config.json")))["width"] == 0.125


def test_resuming_from_a_checkpoint_gives_the_same_model_as_an_uninterrupted_run(tmp_path):
    needs_fmnist()
    common = TINY + ["--epochs", "2", "--schedule", "plateau", "--train-subset", "256"]
    run_train(common + ["--out", str(tmp_path / "straight")])
    run_train(common + ["--out", str(tmp_path / "split"), "--stop-after", "1"])
    assert len(read_history(str(tmp_path / "split"))) == 1
    run_train(common + ["--out", str(tmp_path / "split"), "--resume", str(tmp_path / "split" / "ckpt.pt")])
    a = torch.load(tmp_path / "straight" / "ckpt.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], rtol=0, atol=1e-6), k
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]


def test_a_second_cycle_continues_a_checkpoint_with_its_network_weights_and_history(tmp_path):
    """--init ckpt.pt: the earlier run's structure (BatchNorm, input size) and weights, a new schedule, epochs
    numbered on, and the manifest saying which cycle came from where."""
    needs_fmnist()
    first = TINY + ["--epochs", "1", "--batch-norm", "--train-subset", "256"]
    run_train(first + ["--out", str(tmp_path / "one")])
    start = torch.load(tmp_path / "one" / "ckpt.pt", weights_only=False)
    # no --input-size or --batch-norm here: both come from the checkpoint (the flags' defaults would be 224, off)
    second = [a for a in TINY if a not in ("--input-size", "64")] + ["--train-subset", "256"]
    proc = run_train(
        second
        + [
            "--epochs",
            "1",
            "--lr",
            "0.001",
            "--seed",
            "1",
            "--init",
            str(tmp_path / "one" / "ckpt.pt"),
            "--out",
            str(tmp_path / "two"),
            "--export-dir",
            str(tmp_path / "pkg"),
        ]
    )
    assert "continuing" in proc.stdout and "batch_norm=True" in proc.stdout
    rows = read_history(str(tmp_path / "two"))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[0]["test_top1"]) == start["history"][0]["test_top1"]
    end = torch.load(tmp_path / "two" / "ckpt.pt", weights_only=False)
    assert end["config"]["input_size"] == 64 and end["config"]["batch_norm"]
    moved = [
        k
        for k in start["model"]
        if start["model"][k].is_floating_point() and not torch.equal(start["model"][k], end["model"][k])
    ]
    assert "features.0.weight" in moved and "features.1.running_mean" in moved  # it trained, BatchNorm included
    training = json.load(open(tmp_path / "pkg" / "manifest.json"))["training"]
    assert training["epochs"] == 2 and training["recipe"]["lr"] == 0.001
    assert training["continues"]["epochs"] == 1 and training["continues"]["recipe"]["lr"] == 0.02


def test_a_second_cycle_from_a_package_puts_batch_norm_back_and_counts_both_cycles(tmp_path):
    """--init PACKAGE --batch-norm: for a shipped model whose checkpoint is gone; the manifest names the package
    it continues and counts its epochs too."""
    needs_fmnist()
    common = TINY + ["--batch-norm", "--train-subset", "256", "--epochs", "1", "--no-onnx"]
    run_train(common + ["--out", str(tmp_path / "one"), "--export-dir", str(tmp_path / "tiny-v1")])
    proc = run_train(
        common
        + [
            "--init",
            str(tmp_path / "tiny-v1"),
            "--lr",
            "0.001",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "two"),
            "--export-dir",
            str(tmp_path / "tiny-v2"),
        ]
    )
    assert "7 BatchNorm layers set to undo their statistics" in proc.stdout
    first = json.load(open(tmp_path / "tiny-v1" / "manifest.json"))
    second = json.load(open(tmp_path / "tiny-v2" / "manifest.json"))
    continues = second["training"]["continues"]
    assert continues["package"] == "tiny-v1" and continues["epochs"] == 1 and continues["recipe"]["lr"] == 0.02
    assert second["training"]["epochs"] == 2 and second["training"]["recipe"]["lr"] == 0.001
    # lr 0.001 for one epoch on the same images barely moves the network: a second cycle starts where the
    # first ended, not from a network that BatchNorm put back wrongly
    assert abs(second["metrics"]["top1_fp32"] - first["metrics"]["top1_fp32"]) < 0.1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_with_ddp_over_gloo_and_only_rank_0_writes(tmp_path):
    """Two ranks started with the environment torchrun gives them (Debian's torchrun 1.13 breaks on Python
    3.11: its default --redirects 0 parses to None), each with one thread."""
    needs_fmnist()
    out, pkg = str(tmp_path / "ddp"), str(tmp_path / "ddp-pkg-v1")
    args = (
        [sys.executable, os.path.join(ROOT, "scripts", "train.py")]
        + TINY
        + ["--threads", "1", "--epochs", "2", "--schedule", "cosine", "--out", out, "--export-dir", pkg, "--no-onnx"]
    )
    port = str(free_port())
    procs = [
        subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(
                os.environ,
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE="2",
                LOCAL_WORLD_SIZE="2",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
                OMP_NUM_THREADS="1",
            ),
        )
        for r in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, f"rank failed:\n{o[-2000:]}\n{e[-3000:]}"
    assert "2 process(es)" in outputs[0][0] and outputs[1][0] == ""  # only rank 0 prints and writes
    rows = read_history(out)
    assert len(rows) == 2 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    manifest, _, samples = load_package(pkg)
    assert manifest["metrics"]["dataset"] == "fashion-mnist/test (256)"  # every test image counted once
    assert samples["logits"].shape == (4, 10)
    # two epochs on 1024 images split over two ranks learn: chance is 0.1
    assert manifest["metrics"]["top1_int8"] > 0.3, manifest["metrics"]
    # the export's fp32 evaluation (one process) and the last epoch's (two ranks) saw the same 256 images
    assert abs(manifest["metrics"]["top1_fp32"] - float(rows[-1]["test_top1"])) <= 2 / 256


def test_a_bad_flag_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--arch", "resnet"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--arch 'resnet' is not one of" in proc.stderr


def test_export_only_packages_a_checkpoint_into_an_output_folder_that_does_not_exist_yet(tmp_path):
    needs_fmnist()
    run_train(TINY + ["--epochs", "1", "--out", str(tmp_path / "run")])
    pkg, out = str(tmp_path / "exported-v1"), str(tmp_path / "not" / "made" / "yet")
    run_train(
        TINY
        + [
            "--export-only",
            "--resume",
            str(tmp_path / "run" / "ckpt.pt"),
            "--export-dir",
            pkg,
            "--out",
            out,
            "--no-onnx",
        ]
    )
    manifest = load_package(pkg)[0]
    assert manifest["id"] == "exported-v1" and os.path.getsize(os.path.join(out, "metrics.csv")) > 0
