"""Checkpoints: every key saved and read back, written atomically, RNG states restored, older files still read."""

import os
import random

import numpy as np
import pytest
import torch

from training.checkpoint import KEYS, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def state(**kw):
    out = {k: None for k in KEYS}
    out.update(model={"w": torch.arange(4.0)}, epoch=3, config={"lr": 0.1}, history=[{"epoch": 1}], rng=[])
    out.update(kw)
    return out


def test_a_checkpoint_round_trips_every_key_and_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    lineage = {"package": "x-v1", "epochs": 2, "wall_seconds": 1.0, "recipe": None, "earlier": None}
    save_checkpoint(path, **state(lineage=lineage))
    back = load_checkpoint(path)
    assert set(back) == set(KEYS)
    assert torch.equal(back["model"]["w"], torch.arange(4.0)) and back["epoch"] == 3 and back["lineage"] == lineage
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_a_checkpoint_missing_a_key_is_refused_before_anything_is_written(tmp_path):
    incomplete = state()
    del incomplete["swa"]
    with pytest.raises(AssertionError, match="a checkpoint holds"):
        save_checkpoint(str(tmp_path / "ckpt.pt"), **incomplete)
    assert os.listdir(tmp_path) == []


def test_a_checkpoint_written_before_lineage_had_its_own_key_reads_it_from_the_config(tmp_path):
    path = str(tmp_path / "old.pt")
    old = state(config={"lr": 0.1, "continues": {"checkpoint": "a.pt", "epochs": 1}})
    del old["lineage"], old["swa"]
    torch.save(old, path)
    back = load_checkpoint(path)
    assert back["lineage"] == {"checkpoint": "a.pt", "epochs": 1} and back["swa"] is None


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_restoring_the_rng_states_repeats_the_same_random_numbers_exactly():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    saved = rng_state()
    first = draws()
    assert draws() != first
    set_rng_state(saved)
    assert draws() == first
