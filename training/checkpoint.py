"""train.py's checkpoint (ckpt.pt): everything a resumed run needs to continue as if never stopped.

Keys: model, optimizer, scheduler (None for the cosine and cyclic schedules, which keep no state), scaler,
epoch (epochs of this run done), config (the flags the run was started with), history (one row per epoch,
earlier cycles' rows first), rng (one random-state dict per DDP rank), swa (the running weight average or
None), lineage (the earlier cycles this run continues, training/lineage.py, or None).
"""

import os
import random

import numpy as np
import torch

KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch", "config", "history", "rng", "swa", "lineage")


def rng_state() -> dict:
    """Python's, numpy's and torch's random states (and CUDA's when present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str, **state) -> None:
    """Write `state` (every one of KEYS) to `path` atomically: a crash leaves the previous checkpoint whole."""
    assert set(state) == set(KEYS), f"a checkpoint holds {KEYS}, got {sorted(state)}"
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # never a half-written checkpoint


def load_checkpoint(path: str) -> dict:
    """The checkpoint at `path` on the CPU. It holds numpy and Python RNG states, which PyTorch >= 2.6's default
    weights_only loader refuses; a checkpoint is trusted as your own run's file."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt.setdefault("lineage", ckpt["config"].get("continues"))  # written before lineage had its own key
    ckpt.setdefault("swa", None)
    return ckpt
