"""Learning-rate schedules: warm-up, cosine and cyclic by formula, plateau and step through PyTorch."""

import math

import pytest
import torch

from training.schedule import get_lr, make_scheduler, set_lr, step_scheduler


def config(**kw):
    cfg = {"lr": 0.1, "lr_min": 0.0, "warmup_epochs": 0.0, "schedule": "cosine", "epochs": 10}
    cfg.update(kw)
    return cfg


def test_warm_up_rises_linearly_from_zero_then_cosine_falls_to_zero_at_the_last_epoch():
    cfg = config(warmup_epochs=2.0)
    assert get_lr(cfg, 0.0) == 0.0
    assert get_lr(cfg, 0.5) == 0.1 * 0.5 / 2.0
    assert get_lr(cfg, 2.0) == 0.1  # cos(0): the peak right after the warm-up
    assert get_lr(cfg, 6.0) == 0.1 * 0.5 * (1 + math.cos(math.pi * 0.5))  # halfway through the cosine
    assert get_lr(cfg, 10.0) == 0.0
    assert get_lr(cfg, 12.0) == 0.0  # past the end it stays at zero


def test_the_cyclic_schedule_falls_from_lr_to_lr_min_within_every_epoch():
    cfg = config(lr=0.01, lr_min=0.001, schedule="cyclic", epochs=3)
    assert get_lr(cfg, 0.0) == get_lr(cfg, 1.0) == get_lr(cfg, 2.0) == 0.01
    assert get_lr(cfg, 1.5) == pytest.approx(0.0055, rel=1e-12)
    assert get_lr(cfg, 2.999) == pytest.approx(0.001, abs=1e-5)
    assert get_lr(config(lr=0.01, lr_min=0.001, schedule="cyclic", warmup_epochs=1.0), 0.5) == 0.005  # warm-up first


@pytest.mark.parametrize("schedule", ["plateau", "step"])
def test_plateau_and_step_leave_the_rate_to_their_pytorch_scheduler(schedule):
    assert get_lr(config(schedule=schedule), 3.5) is None
    assert get_lr(config(schedule=schedule, warmup_epochs=1.0), 0.25) == 0.025  # the warm-up applies to all


def optimizer_with_groups():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    return torch.optim.SGD([{"params": [a], "lr_mult": 1.0}, {"params": [b], "lr_mult": 0.1}, {"params": []}], lr=1.0)


def test_set_lr_scales_each_group_by_its_lr_mult():
    opt = optimizer_with_groups()
    set_lr(opt, 0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.05, 0.5]


def test_plateau_divides_by_ten_once_top1_stops_improving_for_patience_epochs():
    opt = optimizer_with_groups()
    cfg = config(schedule="plateau", plateau_patience=1)
    scheduler = make_scheduler(cfg, opt)
    for top1 in (0.5, 0.6, 0.6):  # one epoch without improvement: within patience
        opt.step()
        step_scheduler(scheduler, top1)
    assert opt.param_groups[0]["lr"] == 1.0
    step_scheduler(scheduler, 0.6)  # the second: lr / 10
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_step_divides_by_ten_every_step_epochs_and_cosine_has_no_scheduler():
    opt = optimizer_with_groups()
    scheduler = make_scheduler(config(schedule="step", step_epochs=2), opt)
    lrs = []
    for _ in range(4):
        opt.step()  # PyTorch expects an optimiser step before each scheduler step
        step_scheduler(scheduler, 0.0)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([1.0, 0.1, 0.1, 0.01])
    assert (
        make_scheduler(config(schedule="cosine"), opt) is None
        and make_scheduler(config(schedule="cyclic"), opt) is None
    )
    step_scheduler(None, 0.0)  # nothing to step
