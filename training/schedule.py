"""Learning-rate schedules: the warm-up, cosine and cyclic rates set every step, plateau and step by PyTorch.

`get_lr` answers for a fractional epoch (epoch index + step / steps per epoch); the training loop writes its
answer into every parameter group, times the group's `lr_mult` (training/finetune.py's loaded layers learn
slower). For plateau and step it answers None: their PyTorch scheduler owns the rate and steps once an epoch.
"""

import math

import torch

SCHEDULES = ("plateau", "step", "cosine", "cyclic")


def get_lr(cfg: dict, epoch_float: float):
    """Learning rate at a (fractional) epoch for the warm-up and the cosine and cyclic schedules, else None."""
    base = cfg["lr"]
    if cfg["warmup_epochs"] > 0 and epoch_float < cfg["warmup_epochs"]:
        return base * epoch_float / cfg["warmup_epochs"]
    if cfg["schedule"] == "cosine":
        span = max(1e-9, cfg["epochs"] - cfg["warmup_epochs"])
        t = min(1.0, (epoch_float - cfg["warmup_epochs"]) / span)
        return base * 0.5 * (1 + math.cos(math.pi * t))
    if cfg["schedule"] == "cyclic":  # Izmailov et al.'s cyclical rate, one cycle an epoch: lowest at its end
        return base - (base - cfg["lr_min"]) * (epoch_float - math.floor(epoch_float))
    return None  # plateau/step: the torch scheduler owns the lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every parameter group at `lr` times its lr_mult (1 when the group has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


def make_scheduler(cfg: dict, optimizer: torch.optim.Optimizer):
    """The PyTorch scheduler of plateau (lr/10 when test top-1 stalls) and step (lr/10 every step_epochs), else None."""
    if cfg["schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.1, patience=cfg["plateau_patience"]
        )
    if cfg["schedule"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg["step_epochs"], gamma=0.1)
    return None


def step_scheduler(scheduler, test_top1: float) -> None:
    """The once-an-epoch step: plateau watches the test top-1, step counts epochs; none does nothing."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(test_top1)
    elif scheduler:
        scheduler.step()
