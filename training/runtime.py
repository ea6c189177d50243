"""Where a run computes: processes (torchrun's DDP environment), device, threads, seeds, and its data loaders.

A `Runtime` is made once by `setup_runtime` and passed to everything that needs to know the rank, the world
size or the device; `cpu_runtime` is the one export works in (this process alone, on the CPU).
"""

import dataclasses
import os
import random

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, Subset
from torch.utils.data.distributed import DistributedSampler

from training.data import collate_skip


@dataclasses.dataclass(frozen=True)
class Runtime:
    ddp: bool  # several processes (torchrun), gradients all-reduced by DistributedDataParallel
    rank: int  # this process's index among `world`; rank 0 prints and writes files
    world: int  # number of processes
    device: torch.device
    cuda: bool

    @property
    def master(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str = "auto", threads: int = 0, seed: int = 0) -> Runtime:
    """Distributed init (torchrun sets RANK/WORLD_SIZE), device, CPU threads, seeds (seed + rank)."""
    ddp = "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", 0)) if ddp else 0
    world = int(os.environ.get("WORLD_SIZE", 1)) if ddp else 1
    local_rank = int(os.environ.get("LOCAL_RANK", 0)) if ddp else 0
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is visible")
    if ddp:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
    else:
        dev = torch.device("cpu")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world)) if ddp else 1
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    seed_everything(seed + rank)
    return Runtime(ddp=ddp, rank=rank, world=world, device=dev, cuda=use_cuda)


def cpu_runtime(rt: Runtime) -> Runtime:
    """The runtime export works in: this process alone, on the CPU, whatever the run trained on."""
    return dataclasses.replace(rt, device=torch.device("cpu"), cuda=False, ddp=False, rank=0, world=1)


def seed_everything(s: int) -> None:
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def make_scaler(enabled: bool):
    """torch.amp.GradScaler exists from 2.3; 1.13 has only torch.cuda.amp.GradScaler."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain network inside DistributedDataParallel and torch.compile's wrappers."""
    model = model.module if hasattr(model, "module") else model
    return getattr(model, "_orig_mod", model)


def make_loader(ds, cfg: dict, rt: Runtime, train: bool, epoch: int) -> DataLoader:
    """Per-epoch loader whose order and worker seeds depend only on (seed, epoch): resumable exactly.

    Batches are (images, labels, undecodable count) from data.collate_skip; images is None when none decoded.
    """
    g = torch.Generator().manual_seed(cfg["seed"] * 1000003 + epoch)
    if train:
        if rt.ddp:
            sampler = DistributedSampler(ds, rt.world, rt.rank, shuffle=True, seed=cfg["seed"], drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(ds, generator=g)
    else:  # evaluation: each rank takes every world-th image, no padding, so the counts are exact
        ds = Subset(ds, range(rt.rank, len(ds), rt.world)) if rt.ddp else ds
        sampler = SequentialSampler(ds)
    per_rank = max(1, cfg["batch_size"] // rt.world)
    # Dropping the last partial batch keeps batch statistics sane, unless there is no full batch at all.
    drop_last = train and len(sampler) >= per_rank
    return DataLoader(
        ds,
        batch_size=per_rank,
        sampler=sampler,
        num_workers=loader_workers(cfg, rt),
        generator=g,
        collate_fn=collate_skip,
        drop_last=drop_last,
        pin_memory=rt.cuda,
        persistent_workers=False,
    )


def loader_workers(cfg: dict, rt: Runtime) -> int:
    """--workers, or what the machine has: PyTorch warns (and may stall) past the CPUs this process may use."""
    if cfg["workers"] >= 0:
        return cfg["workers"]
    if cfg["dataset"] == "fashion-mnist":
        return 0  # in memory: worker processes would only copy it
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", rt.world)) if rt.ddp else 1
    return max(1, min(8, cpus // local))  # 8: beyond it decoding JPEGs is rarely what a CPU or GPU waits for
