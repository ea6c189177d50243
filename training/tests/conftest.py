"""Shared helpers: the repository root on sys.path, and running scripts/train.py as a user would."""

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
TINY = [
    "--input-size",
    "64",
    "--width",
    "0.125",
    "--dropout",
    "0",
    "--train-subset",
    "1024",
    "--test-subset",
    "256",
    "--batch-size",
    "32",
    "--lr",
    "0.02",
    "--warmup-epochs",
    "0.3",
    "--threads",
    "2",
    "--workers",
    "0",
]


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


def needs_fmnist():
    if not os.path.exists(os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz")):
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
