"""Shared helpers: the repository root on sys.path, train.py's config, and running scripts/train.py as a user would."""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
# Tiny but real: the paper's layer structure at the smallest input it allows (64 -> 256x1x1 at width 1),
# an eighth of the channels, a few hundred images. Two threads per process at most (2-core CI machines).
TINY = (
    "--input-size 64 --width 0.125 --dropout 0 --train-subset 1024 --test-subset 256 --batch-size 32 --lr 0.02 "
    "--warmup-epochs 0.3 --threads 2 --workers 0"
).split()


def run_train(args, timeout=600, env=None):
    """Run scripts/train.py as a user would and return the completed process."""
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py")] + list(args)
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env or {}))
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def require(available: bool, what: str) -> None:
    """Skip the test when something it needs is missing, except under CI (CI=true), where that fails it: CI
    provisions everything (.ci/run), so a missing dataset there is a broken machine, not a test to leave out."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true: required, not skipped)")
    pytest.skip(what)


def needs_fmnist():
    installed = os.path.exists(os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz"))
    require(installed, "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


def train_defaults() -> tuple:
    """(scripts/train.py's source, its config block's defaults), read without running the script."""
    with open(os.path.join(ROOT, "scripts", "train.py")) as f:
        source = f.read()
    dashes = "# " + "-" * 77
    block = source.split(dashes + " config\n", 1)[1].split(dashes + "\n", 1)[0]
    defaults = {}
    for node in ast.parse(block).body:
        if isinstance(node, ast.Assign) and node.targets[0].id != "config_keys":
            try:
                defaults[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:  # fmnist_dir = D.FMNIST_DIR
                defaults[node.targets[0].id] = FMNIST_DIR
    return source, defaults


def train_config(**overrides) -> dict:
    """train.py's config as the command line gives it without flags, with `overrides`."""
    return dict(train_defaults()[1], **overrides)
