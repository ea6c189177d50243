r"""Train an AlexNet-family model and export it as an alexnet-edge model package (docs/model-package.md).

Run with Debian's PyTorch (only /usr/bin/python3 sees it), from the repository root:

  # the default model's first cycle (v4): paper AlexNet on Fashion-MNIST, CPU, reduced input size
  nice -n 5 /usr/bin/python3 scripts/train.py --input-size 64 --epochs 20 --batch-norm --lr 0.05 --schedule cosine \
      --warmup-epochs 0.5 --label-smoothing 0.1 --out runs/fmnist-64-v4 --export-dir model/alexnet-fmnist-64-v4

  # your own images: root/train/<class>/*.jpg and root/val/<class>/*.jpg (the ImageNet layout)
  /usr/bin/python3 scripts/train.py --dataset /data/flowers --input-size 224 --epochs 90 \
      --out runs/flowers --export-dir model/alexnet-flowers-224-v1

  # several GPUs (or machines: add --nnodes/--node-rank/--master-addr, see torchrun --help)
  torchrun --standalone --nproc-per-node 8 scripts/train.py --dataset /data/imagenet --input-size 224 --epochs 90

  # resume an interrupted run (same flags; the checkpoint restores model, optimiser, schedule, epoch, RNG)
  /usr/bin/python3 scripts/train.py ... --resume runs/fmnist-64/ckpt.pt

  # a second cycle (warm restart) of a finished run: its network and weights, a new schedule, epochs numbered on
  /usr/bin/python3 scripts/train.py --init runs/fmnist-64-v4/ckpt.pt --epochs 22 --lr 0.02 --schedule cosine \
      --warmup-epochs 0.5 --label-smoothing 0.1 --seed 1 --out runs/fmnist-64-v5 --export-dir model/alexnet-fmnist-64-v5

  # the same from a package when its checkpoint is gone (v5 was made so from the package v4)
  /usr/bin/python3 scripts/train.py --init model/alexnet-fmnist-64-v4 --input-size 64 --batch-norm --epochs 15 \
      --lr 0.02 --schedule cosine --warmup-epochs 0.5 --label-smoothing 0.1 --seed 1 --out runs/fmnist-64-v5 \
      --export-dir model/alexnet-fmnist-64-v5

  # a third cycle with weight averaging (the default model v6): one-epoch cycles, the mean of their ends exported
  /usr/bin/python3 scripts/train.py --init runs/fmnist-64-v5/ckpt.pt --epochs 15 --schedule cyclic --lr 0.01 \
      --lr-min 0.0005 --warmup-epochs 0 --swa-epochs 15 --label-smoothing 0.1 --seed 2 --out runs/fmnist-64-v6 \
      --export-dir model/alexnet-fmnist-64-v6

  # fine-tune ImageNet weights on your images: every layer but the last loaded, a new last layer for your classes
  /usr/bin/python3 scripts/train.py --dataset /data/flowers --init alexnet-owt-7be5be79.pth --epochs 10 \
      --batch-size 32 --out runs/flowers-ft --export-dir model/alexnet-flowers-ft-v1
  /usr/bin/python3 scripts/train.py --dataset /data/flowers --init bvlc_alexnet.onnx --source-input caffe ...

  # export a checkpoint without training; convert torchvision's ImageNet AlexNet weights into a package
  /usr/bin/python3 scripts/train.py --export-only --resume runs/fmnist-64/ckpt.pt --export-dir model/x-v2
  # re-export a package's own weights in the current served arithmetic (new id: packages are immutable)
  /usr/bin/python3 scripts/train.py --export-only --init model/alexnet-fmnist-64-v4 --input-size 64 --export-dir model/x-v5
  /usr/bin/python3 scripts/train.py --from-torchvision alexnet-owt-7be5be79.pth --export-dir model/alexnet-tv-imagenet-v1
  /usr/bin/python3 scripts/train.py --from-onnx bvlc_alexnet.onnx --source-input caffe --export-dir model/bvlc-alexnet-v1

Every config name is a flag: `batch_size` is `--batch-size 64`, booleans are `--amp` / `--no-amp`.
Written beside the checkpoint (rank 0 only): ckpt.pt, config.json, metrics.csv, curves.png, confusion.png.
"""
import argparse
import csv
import datetime
import json
import math
import os
import random
import re
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler, Subset, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training import data as D  # noqa: E402
from training.model import ARCHS, build_model, count_parameters  # noqa: E402
from training.finetune import finetune_model, param_groups  # noqa: E402
from training.progress import epoch_progress  # noqa: E402
from training.swa import WeightAverage, recompute_batch_norm  # noqa: E402

# ----------------------------------------------------------------------------- config
# data
dataset = "fashion-mnist"   # "fashion-mnist", or an image-folder root holding train/<class>/ and val/<class>/
fmnist_dir = D.FMNIST_DIR   # where the Fashion-MNIST IDX .gz files are (Debian's dataset-fashion-mnist)
train_subset = 0            # use only the first N training images (0 = all); for tests and probes
test_subset = 0             # use only the first N test images (0 = all)
epoch_test_subset = 0       # after each epoch evaluate only the first N test images (0 = all); export uses all
workers = -1                # DataLoader worker processes; -1: 0 for Fashion-MNIST (in memory), else the CPUs
                            # this process may use, shared among local DDP processes, at most 8
# model
arch = "alexnet"            # alexnet (the paper), alexnet-bn (Keras tutorial variant), alexnet-tv (torchvision's)
two_tower = False           # alexnet only: the paper's two-tower grouping (groups=2 in conv2, conv4, conv5)
input_size = 224            # square input side; 224/227 for the paper; fc6 follows the feature map
width = 1.0                 # channel multiplier for every layer (1.0 = the paper); small values for tests
dropout = -1.0              # dropout probability; -1 keeps the architecture's own (0.5 paper, 0.4 alexnet-bn)
batch_norm = False          # alexnet only: BatchNorm before every hidden ReLU while training, folded into the conv
                            # and dense weights at export, so the package holds the paper's layers; allows a ~5x
                            # larger --lr (the default model's recipe)
# recipe (paper section 5 defaults)
epochs = 90                 # total epochs
batch_size = 128            # global batch size (divided among DDP processes)
lr = 0.01                   # initial learning rate
momentum = 0.9              # SGD momentum
weight_decay = 5e-4         # L2 weight decay
schedule = "plateau"        # plateau: lr/10 when test top-1 stalls; step: lr/10 every --step-epochs; cosine: to 0;
                            # cyclic: each epoch falls linearly from --lr to --lr-min (for --swa-epochs)
lr_min = 0.0                # cyclic: the learning rate each epoch ends at
plateau_patience = 2        # plateau: epochs without improvement before lr/10
step_epochs = 30            # step: epochs between lr/10
warmup_epochs = 0.0         # linear lr warm-up from 0 over this many epochs (all schedules)
label_smoothing = 0.0       # cross-entropy label smoothing
swa_epochs = 0              # export the mean of the weights at the ends of the last N epochs (stochastic weight
                            # averaging, Izmailov et al. 2018), BatchNorm statistics measured again on the training
                            # set; each epoch also reports the running mean's test top-1 (0 = off)
pad_crop = 2                # Fashion-MNIST: random crop of the 28x28 image padded by this many pixels (0 = off)
random_erase = 0.0          # Fashion-MNIST: probability of erasing one random rectangle (Zhong et al. 2017; 0 = off)
pca_sigma = 0.1             # RGB folders: the paper's PCA colour noise sigma (0 = off)
ten_crop = False            # also report the paper's 10-crop test accuracy at the end (image folders)
# system
device = "auto"             # auto (cuda if present), cuda, cpu
amp = True                  # CUDA only: float16 autocast + GradScaler
channels_last = True        # CUDA only: NHWC memory format for the convolutions
compile = True              # torch.compile when this PyTorch has it (2.x)
threads = 0                 # CPU threads for torch; 0 = os.cpu_count() (divided among local DDP processes)
seed = 0                    # seeds python, numpy, torch (+ rank); data order is seed + epoch
# output
out = "runs/default"        # checkpoint directory: ckpt.pt, config.json, metrics.csv, curves.png, confusion.png
resume = ""                 # checkpoint to resume from (or to export with --export-only)
init = ""                   # start from these weights: a train.py checkpoint (ckpt.pt: another cycle of the same
                            # network with a fresh optimiser and schedule; its flags, BatchNorm and history carry
                            # over), a torchvision AlexNet state_dict (.pth), an AlexNet-family
                            # ONNX graph (.onnx) or a model package directory (with --batch-norm, BatchNorm is put
                            # back behind its folded layers, set to compute what the package does: a second cycle
                            # of a shipped model whose checkpoint is gone). A .pth/.onnx sets --arch, --two-tower
                            # and --width from its layers, loads every layer but the last and adds a new last layer
                            # sized to the dataset's classes (fine-tuning); give the same --init again with --resume
source_input = "torchvision"  # --init/--from-onnx .pth/.onnx: the input the source was trained on: torchvision
                            # (RGB in [0, 1] with ImageNet mean/std) or caffe (BGR 0-255 minus Caffe's ImageNet mean,
                            # e.g. the ONNX zoo's bvlc_alexnet; conv1 is turned to RGB and the manifest says the rest)
freeze_features = False     # with --init: train the dense layers only; the convolutions keep their loaded weights
head_lr_ratio = 10.0        # with --init: the new last layer learns at --lr, loaded layers at --lr / this; 10 as in
                            # Caffe's fine-tuning example (lr_mult 10 on the new layer): it starts from nothing, the
                            # loaded layers only need nudging
export_dir = ""             # write the model package here at the end (rank 0), e.g. model/alexnet-fmnist-64-v4
model_id = ""               # package id; none: the export directory's name
samples = 4                 # number of test inputs stored in samples.safetensors
export_only = False         # export the --resume checkpoint, train nothing
from_torchvision = ""       # path to a torchvision AlexNet state_dict (.pth): convert it into a package, 224x224
convolutions = "int8"       # where the Worker runs convolutions: int8 (our kernels) or fp32 (tfjs-wasm, for a model whose int8 error is too large)
from_onnx = ""              # path to an AlexNet-family ONNX graph (torchvision or Caffe layout): convert it into a
                            # package at the graph's input size (--input-size when the graph leaves it open)
labels = ""                 # --from-onnx / --from-torchvision: a text file of class names, one per line in output
                            # order; empty: the 1000 ImageNet classes
onnx = True                 # also write <export dir>.onnx (fp32) beside the package, for benchmarks
stop_after = 0              # stop after this many epochs in this invocation (0 = run to --epochs); preemptible runs
note = ""                   # free text recorded in the manifest's training record
config_keys = [k for k, v in list(globals().items())
               if not k.startswith("_") and isinstance(v, (int, float, bool, str)) and k not in ("D",)]
# -----------------------------------------------------------------------------


def config_help() -> tuple:
    """{name: help text} and [(section, [names])] read from the config block's comments, so they never drift."""
    helps, sections, name = {}, [], None
    with open(os.path.abspath(__file__)) as f:
        lines = f.read().split("# " + "-" * 77 + " config\n", 1)[1].split("# " + "-" * 77 + "\n", 1)[0].splitlines()
    for line in lines:
        m = re.match(r"^(\w+) += .*?# (.*)$", line)
        if m and m.group(1) in config_keys:
            name = m.group(1)
            helps[name] = m.group(2).strip()
            sections[-1][1].append(name)
        elif re.match(r"^ +# ", line) and name:
            helps[name] += " " + line.strip()[2:]
        elif line.startswith("# "):
            sections.append((line[2:].strip(), []))
            name = None
    return helps, sections


def default_text(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if v == "":
        return "none"
    return repr(v) if isinstance(v, str) else str(v)


def parse_flags(argv):
    """Every config name is a flag; unknown flags and bad values exit with argparse's message."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    helps, sections = config_help()
    assert set(helps) == set(config_keys), f"config names without a comment: {set(config_keys) - set(helps)}"
    for section, names in sections:
        group = p.add_argument_group(section)
        for k in names:
            v = globals()[k]
            flag = "--" + k.replace("_", "-")
            text = f"{helps[k]} (default: {default_text(v)})".replace("%", "%%")
            if isinstance(v, bool):
                group.add_argument(flag, dest=k, action=argparse.BooleanOptionalAction, default=v, help=text)
            else:
                group.add_argument(flag, dest=k, type=type(v), default=v, help=text,
                                   metavar=type(v).__name__.upper().replace("STR", "TEXT"))
    cfg = vars(p.parse_args(argv))
    if cfg["arch"] not in ARCHS:
        p.error(f"--arch {cfg['arch']!r} is not one of {', '.join(ARCHS)}")
    if cfg["source_input"] not in ("torchvision", "caffe"):
        p.error(f"--source-input {cfg['source_input']!r} is not one of torchvision, caffe")
    if cfg["schedule"] not in ("plateau", "step", "cosine", "cyclic"):
        p.error(f"--schedule {cfg['schedule']!r} is not one of plateau, step, cosine, cyclic")
    if cfg["schedule"] == "cyclic" and not 0 <= cfg["lr_min"] <= cfg["lr"]:
        p.error("--lr-min must lie between 0 and --lr")
    if not 0 <= cfg["swa_epochs"] <= cfg["epochs"]:
        p.error("--swa-epochs must lie between 0 and --epochs")
    if cfg["convolutions"] not in ("int8", "fp32"):
        p.error(f"--convolutions {cfg['convolutions']!r} is not one of int8, fp32")
    if cfg["device"] not in ("auto", "cuda", "cpu"):
        p.error(f"--device {cfg['device']!r} is not one of auto, cuda, cpu")
    if cfg["epochs"] < 1 or cfg["batch_size"] < 1 or cfg["lr"] <= 0:
        p.error("--epochs, --batch-size and --lr must be positive")
    if cfg["export_only"] and (not (cfg["resume"] or cfg["init"]) or not cfg["export_dir"]):
        p.error("--export-only needs --resume CHECKPOINT (or --init PACKAGE) and --export-dir DIR")
    for flag in ("from_torchvision", "from_onnx"):
        if cfg[flag] and not cfg["export_dir"]:
            p.error(f"--{flag.replace('_', '-')} needs --export-dir DIR")
    if cfg["from_onnx"] and cfg["from_torchvision"]:
        p.error("--from-onnx and --from-torchvision convert one source each: give one")
    if cfg["freeze_features"] and not cfg["init"]:
        p.error("--freeze-features keeps loaded features: it needs --init")
    if cfg["head_lr_ratio"] <= 0:
        p.error("--head-lr-ratio must be positive")
    if cfg["ten_crop"] and cfg["dataset"] == "fashion-mnist":
        p.error("--ten-crop applies to image-folder datasets (Fashion-MNIST is resized to the input, no crops)")
    return cfg


def setup_runtime(cfg):
    """Distributed init (torchrun sets RANK/WORLD_SIZE), device, threads, seeds. Returns a small dict."""
    ddp = "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", 0)) if ddp else 0
    world = int(os.environ.get("WORLD_SIZE", 1)) if ddp else 1
    local_rank = int(os.environ.get("LOCAL_RANK", 0)) if ddp else 0
    use_cuda = torch.cuda.is_available() if cfg["device"] == "auto" else cfg["device"] == "cuda"
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
        torch.set_num_threads(cfg["threads"] or max(1, (os.cpu_count() or 1) // local_world))
    seed_everything(cfg["seed"] + rank)
    return {"ddp": ddp, "rank": rank, "world": world, "device": dev, "cuda": use_cuda, "master": rank == 0}


def seed_everything(s):
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def rng_state():
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_datasets(cfg):
    """(train, test, labels, preprocess block of the manifest)."""
    if cfg["dataset"] == "fashion-mnist":
        train = D.FashionMNIST(cfg["fmnist_dir"], "train", cfg["input_size"], True, cfg["pad_crop"], cfg["train_subset"],
                               erase=cfg["random_erase"])
        test = D.FashionMNIST(cfg["fmnist_dir"], "test", cfg["input_size"], False, 0, cfg["test_subset"])
        return train, test, train.classes, D.fmnist_preprocess(cfg["input_size"])
    mean, std = input_stats(cfg)
    train = D.ImageFolder(cfg["dataset"], "train", cfg["input_size"], True, cfg["pca_sigma"], mean, std)
    test = D.ImageFolder(cfg["dataset"], "val", cfg["input_size"], False, mean=mean, std=std, classes=train.classes)
    if cfg["train_subset"]:
        train = Subset(train, range(min(cfg["train_subset"], len(train))))
        train.classes = train.dataset.classes
    if cfg["test_subset"]:
        test = Subset(test, range(min(cfg["test_subset"], len(test))))
    return train, test, train.classes, D.folder_preprocess(cfg["input_size"], mean, std)


def input_stats(cfg) -> tuple:
    """(mean, std) of RGB pixels in [0, 1]: ImageNet's as torchvision trains, or Caffe's 0-255 mean subtraction."""
    if cfg["source_input"] == "caffe" and cfg["init"] and not os.path.isdir(cfg["init"]):
        return D.CAFFE_MEAN, D.CAFFE_STD
    return D.IMAGENET_MEAN, D.IMAGENET_STD


def make_loader(ds, cfg, rt, train, epoch):
    """Per-epoch loader whose order and worker seeds depend only on (seed, epoch): resumable exactly."""
    g = torch.Generator().manual_seed(cfg["seed"] * 1000003 + epoch)
    nw = loader_workers(cfg, rt)
    if train:
        sampler = (DistributedSampler(ds, rt["world"], rt["rank"], shuffle=True, seed=cfg["seed"], drop_last=True)
                   if rt["ddp"] else RandomSampler(ds, generator=g))
        if rt["ddp"]:
            sampler.set_epoch(epoch)
    else:  # evaluation: each rank takes every world-th image, no padding, so the counts are exact
        ds = Subset(ds, range(rt["rank"], len(ds), rt["world"])) if rt["ddp"] else ds
        sampler = SequentialSampler(ds)
    per_rank = max(1, cfg["batch_size"] // rt["world"])
    # Dropping the last partial batch keeps batch statistics sane, unless there is no full batch at all.
    drop_last = train and len(sampler) >= per_rank
    return DataLoader(ds, batch_size=per_rank, sampler=sampler, num_workers=nw, generator=g,
                      collate_fn=D.collate_skip, drop_last=drop_last, pin_memory=rt["cuda"],
                      persistent_workers=False)


def loader_workers(cfg, rt) -> int:
    """--workers, or what the machine has: PyTorch warns (and may stall) past the CPUs this process may use."""
    if cfg["workers"] >= 0:
        return cfg["workers"]
    if cfg["dataset"] == "fashion-mnist":
        return 0  # in memory: worker processes would only copy it
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", rt["world"])) if rt["ddp"] else 1
    return max(1, min(8, cpus // local))  # 8: beyond it decoding JPEGs is rarely what a CPU or GPU waits for


def get_lr(cfg, epoch_float):
    """Learning rate at a (fractional) epoch for the warm-up and the cosine and cyclic schedules."""
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


def make_scheduler(cfg, optimizer):
    if cfg["schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1,
                                                          patience=cfg["plateau_patience"])
    if cfg["schedule"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg["step_epochs"], gamma=0.1)
    return None


def make_scaler(enabled):
    """torch.amp.GradScaler exists from 2.3; 1.13 has only torch.cuda.amp.GradScaler."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def unwrap(model):
    model = model.module if hasattr(model, "module") else model
    return getattr(model, "_orig_mod", model)


def train_epoch(model, loader, optimizer, scaler, cfg, rt, epoch):
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt["device"])  # on the device: no sync per step
    correct = torch.zeros((), dtype=torch.int64, device=rt["device"])
    seen = skipped = 0
    n = len(loader)
    total = min(len(loader.sampler), n * loader.batch_size) * rt["world"]  # drop_last may leave a partial batch out
    bar = epoch_progress(total, f"epoch {epoch + 1}/{cfg['epochs']}", rt["master"])
    for i, (x, y, bad) in enumerate(loader):
        skipped += bad
        bar.update((len(y) + bad if x is not None else bad) * rt["world"])
        if x is None:
            continue
        lr_now = get_lr(cfg, epoch + i / n)
        if lr_now is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_now * group.get("lr_mult", 1.0)
        x = x.to(rt["device"], non_blocking=True)
        y = y.to(rt["device"], non_blocking=True)
        if rt["cuda"] and cfg["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=rt["cuda"] and cfg["amp"]):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg["label_smoothing"])
        if i % 100 == 0:  # an occasional check; every step would sync the GPU
            assert torch.isfinite(loss), f"loss is {loss.item()} at epoch {epoch + 1} step {i}: lower --lr"
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach().double() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    bar.close()
    assert seen, f"no training image was read in epoch {epoch + 1} ({skipped} could not be decoded)"
    assert torch.isfinite(loss_sum), f"the loss diverged in epoch {epoch + 1}: lower --lr"
    stats = torch.tensor([loss_sum.item(), correct.item(), seen, skipped], dtype=torch.float64)
    if rt["ddp"]:
        dist.all_reduce(stats)
    return {"train_loss": stats[0].item() / max(1, stats[2].item()), "train_top1": stats[1].item() / max(1, stats[2].item()),
            "skipped": int(stats[3].item())}


@torch.no_grad()
def evaluate(model, loader, rt, num_classes, forward=None):
    """Loss, top-1, top-5 and confusion matrix over the (sharded) test set; `forward` overrides model(x)."""
    model.eval()
    forward = forward or model
    loss_sum, top1, top5, seen, skipped = 0.0, 0, 0, 0, 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for x, y, bad in loader:
        skipped += bad
        if x is None:
            continue
        x, y = x.to(rt["device"]), y.to(rt["device"])
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=rt["cuda"] and forward is model):
            if x.dim() == 5:  # [B, 10, C, H, W] ten crops: average the probabilities (paper section 4.1)
                probs = forward(x.flatten(0, 1)).float().softmax(1).view(x.shape[0], x.shape[1], -1).mean(1)
                logits = probs.clamp_min(1e-12).log()
            else:
                logits = forward(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        k = min(5, num_classes)
        topk = logits.topk(k, dim=1).indices
        top1 += (topk[:, 0] == y).sum().item()
        top5 += (topk == y[:, None]).any(1).sum().item()
        seen += len(y)
        confusion += torch.bincount((y * num_classes + topk[:, 0]).cpu(), minlength=num_classes ** 2).view(
            num_classes, num_classes)
    stats = torch.tensor([loss_sum, top1, top5, seen, skipped], dtype=torch.float64)
    if rt["ddp"]:
        dist.all_reduce(stats)
        dist.all_reduce(confusion)
    n = max(1.0, stats[3].item())
    return {"test_loss": stats[0].item() / n, "test_top1": stats[1].item() / n, "test_top5": stats[2].item() / n,
            "test_count": int(stats[3].item()), "test_skipped": int(stats[4].item()), "confusion": confusion}


def save_checkpoint(path, model, optimizer, scheduler, scaler, cfg, epoch, history, rngs, swa=None):
    tmp = path + ".tmp"
    torch.save({"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler else None, "scaler": scaler.state_dict(),
                "epoch": epoch, "config": cfg, "history": history, "rng": rngs,
                "swa": swa.state_dict() if swa else None}, tmp)
    os.replace(tmp, path)  # never a half-written checkpoint


def write_metrics(out_dir, history, confusion, labels):
    from training.plots import write_confusion_png, write_curves_png, write_metrics_csv
    os.makedirs(out_dir, exist_ok=True)  # --export-only may name an --out that no run created
    write_metrics_csv(os.path.join(out_dir, "metrics.csv"), history)
    write_curves_png(os.path.join(out_dir, "curves.png"), history)
    if confusion is not None:
        write_confusion_png(os.path.join(out_dir, "confusion.png"), confusion, labels)


def cpu_runtime(rt) -> dict:
    """The runtime export works in: this process alone, on the CPU, whatever the run trained on."""
    return dict(rt, device=torch.device("cpu"), cuda=False, ddp=False, rank=0, world=1)


def export(model, cfg, rt, test_ds, labels, preprocess, history, trained_on):
    """Evaluate fp32 and the served int8 arithmetic on the test set, then write the package."""
    from training.class_report import per_class, write_class_report
    from training.package import export_package
    from training.quantize import fold_and_quantize, served_forward
    model = unwrap(model).to("cpu").float().eval()
    cpu_rt = cpu_runtime(rt)
    loader = make_loader(test_ds, dict(cfg, workers=cfg["workers"]), cpu_rt, False, 0)
    q = fold_and_quantize(model)
    print(f"export: evaluating fp32 and served int8 on {len(test_ds)} test images", flush=True)
    m32 = evaluate(model, loader, cpu_rt, len(labels))
    m8 = evaluate(model, loader, cpu_rt, len(labels), forward=lambda x: served_forward(q, x, convolutions=cfg["convolutions"]))
    dataset_name = ("fashion-mnist/test" if cfg["dataset"] == "fashion-mnist" else
                    f"{os.path.basename(os.path.normpath(cfg['dataset']))}/val")
    metrics = {"dataset": f"{dataset_name} ({m32['test_count']})",
               "top1_fp32": round(m32["test_top1"], 4), "top5_fp32": round(m32["test_top5"], 4),
               "top1_int8": round(m8["test_top1"], 4), "top5_int8": round(m8["test_top5"], 4)}
    xs = torch.stack([test_ds[i][0] for i in range(min(cfg["samples"], len(test_ds)))])
    training = training_record(cfg, history, trained_on)
    mid = cfg["model_id"] or os.path.basename(os.path.normpath(cfg["export_dir"]))
    if cfg["ten_crop"]:
        mean, std = input_stats(cfg)
        tc = D.ImageFolder(cfg["dataset"], "val", cfg["input_size"], False, mean=mean, std=std, classes=labels,
                           ten_crop=True)
        m10 = evaluate(model, make_loader(tc, cfg, cpu_rt, False, 0), cpu_rt, len(labels))
        metrics.update(top1_fp32_10crop=round(m10["test_top1"], 4), top5_fp32_10crop=round(m10["test_top5"], 4))
    metrics["per_class_recall"] = [r["recall"] for r in per_class(m8["confusion"], labels)]
    export_package(model, cfg["export_dir"], mid, cfg["input_size"], preprocess, labels, xs, metrics, training,
                   onnx=cfg["onnx"], convolutions=cfg["convolutions"])
    write_metrics(cfg["out"], history, m8["confusion"], labels)
    report = write_class_report(cfg["export_dir"], m8["confusion"], labels)
    print(f"export: per-class precision and recall, confusion matrix: {', '.join(report)}", flush=True)
    print(f"export: wrote {cfg['export_dir']}  fp32 top-1 {metrics['top1_fp32']:.4f} top-5 {metrics['top5_fp32']:.4f}"
          f"  int8 top-1 {metrics['top1_int8']:.4f} top-5 {metrics['top5_int8']:.4f}", flush=True)
    return metrics


def training_record(cfg, history, trained_on):
    recipe = {k: cfg[k] for k in ("batch_size", "lr", "momentum", "weight_decay", "schedule", "warmup_epochs",
                                  "label_smoothing", "width", "two_tower", "batch_norm")}
    recipe["optimizer"] = "sgd"
    if cfg.get("schedule") == "cyclic":
        recipe["lr_min"] = cfg["lr_min"]
    if cfg.get("swa_epochs"):
        recipe["weight_averaging"] = (f"mean of the weights at the ends of the last {cfg['swa_epochs']} epochs "
                                      "(Izmailov et al. 2018), BatchNorm statistics measured again on the training set")
    recipe["dropout"] = cfg["dropout"] if cfg["dropout"] >= 0 else (0.4 if cfg["arch"] == "alexnet-bn" else 0.5)
    if cfg["dataset"] == "fashion-mnist":  # only the augmentation that was applied
        recipe["augmentation"] = f"random crop of the 28x28 image padded by {cfg['pad_crop']}, horizontal flip"
        if cfg["random_erase"]:
            recipe["augmentation"] += f", random erasing p={cfg['random_erase']}"
    else:
        recipe["augmentation"] = f"random crop, horizontal flip, PCA colour noise sigma {cfg['pca_sigma']}"
    rec = {"arch": cfg["arch"], "epochs": len(history) if history else 0, "seed": cfg["seed"],
           "device": trained_on, "torch": torch.__version__.split("+")[0], "python": sys.version.split()[0],
           "date": datetime.date.today().isoformat(), "input_size": cfg["input_size"], "recipe": recipe,
           "wall_seconds": round(sum(h.get("epoch_seconds", 0) for h in history), 1) if history else 0}
    if cfg.get("continues"):
        rec["continues"] = cfg["continues"]  # epochs and wall_seconds count every cycle
        link = cfg["continues"]  # checkpoints carry their history; the first package in the chain does not
        while link and "package" not in link:
            link = link.get("earlier")
        if link:  # add the package's totals, which count its own earlier cycles
            rec["epochs"] += link["epochs"]
            rec["wall_seconds"] = round(rec["wall_seconds"] + link["wall_seconds"], 1)
    elif cfg["init"]:
        rec["initialised_from"] = os.path.basename(os.path.normpath(cfg["init"]))
        recipe.update(freeze_features=cfg["freeze_features"], head_lr_ratio=cfg["head_lr_ratio"],
                      source_input=cfg["source_input"])
    if cfg["note"]:
        rec["note"] = cfg["note"]
    return rec


def read_labels(cfg, units: int) -> list:
    """--labels FILE (one name per line) or the 1000 ImageNet classes; their count must match the last layer."""
    from training.package import imagenet_labels
    if cfg["labels"]:
        with open(cfg["labels"]) as f:
            labels = [line.strip() for line in f if line.strip()]
    else:
        labels = imagenet_labels()
    if len(labels) != units:
        raise SystemExit(f"error: the model has {units} outputs but {cfg['labels'] or 'the ImageNet label list'} "
                         f"holds {len(labels)} labels" + ("" if cfg["labels"] else "; pass --labels FILE"))
    return labels


def convert(cfg, source_path: str, kind: str):
    """A torchvision .pth or an ONNX graph -> package, with sample logits in the served arithmetic and fp32."""
    from training import init_weights
    from training.package import export_package
    try:
        model, size = init_weights.load_source(source_path)
        if cfg["source_input"] == "caffe":
            init_weights.bgr_to_rgb(model)
        if kind == "onnx" and not size:  # a graph with an open input size: the flag says which
            from training.onnx_import import check_shapes
            size = cfg["input_size"]
            check_shapes(model, size, source_path)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    try:
        family = init_weights.choose_arch(model, source_path)
    except ValueError:  # converted all the same: the Worker runs any chain of the family's layers
        family = {"arch": "alexnet-family"}
    arch = family["arch"]
    units = [m for m in model.classifier if isinstance(m, nn.Linear)][-1].out_features
    labels = read_labels(cfg, units)
    gen = torch.Generator().manual_seed(cfg["seed"])
    xs = torch.randn(cfg["samples"], 3, size, size, generator=gen)
    mid = cfg["model_id"] or os.path.basename(os.path.normpath(cfg["export_dir"]))
    what = "torchvision AlexNet weights" if kind == "torchvision" else "ONNX graph"
    training = {**family, "source": f"{what} (converted, not trained here)",
                "weights_file": os.path.basename(source_path), "source_input": cfg["source_input"],
                "torch": torch.__version__.split("+")[0],
                "date": datetime.date.today().isoformat()}
    metrics = {"dataset": "not evaluated here"}
    if kind == "torchvision":
        metrics["dataset"] += " (torchvision reports ImageNet val top-1 0.5652, top-5 0.7907 for its fp32 weights)"
    stats = (D.CAFFE_MEAN, D.CAFFE_STD) if cfg["source_input"] == "caffe" else (D.IMAGENET_MEAN, D.IMAGENET_STD)
    preprocess = D.folder_preprocess(size, *stats)
    export_package(model, cfg["export_dir"], mid, size, preprocess, labels, xs, metrics, training,
                   onnx=cfg["onnx"] and kind != "onnx", convolutions=cfg["convolutions"])
    print(f"wrote {cfg['export_dir']} ({arch}, {size}x{size}, {len(labels)} classes)")


# what makes two runs the same network: a warm restart takes them from the checkpoint, not the command line
STRUCTURE = ("arch", "two_tower", "width", "input_size", "batch_norm", "dropout")


def continue_checkpoint(cfg, rt, num_classes):
    """--init CKPT: the checkpoint's network and weights (BatchNorm statistics included) under this run's recipe.

    cfg["continues"] records the earlier cycle (checkpoint, its epochs and recipe) for the manifest; main()
    starts this run's history with the earlier one, so epochs are numbered on from it.
    """
    ckpt = torch.load(cfg["init"], map_location="cpu", weights_only=False)
    prior = ckpt["config"]
    model = build_model(cfg["arch"], num_classes, cfg["input_size"], cfg["two_tower"], cfg["width"],
                        cfg["dropout"], cfg["batch_norm"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:  # another class count: that is fine-tuning, which a package or .pth serves
        raise SystemExit(f"error: --init {cfg['init']}: its network does not fit {num_classes} classes: {e}")
    earlier = prior.get("continues", {})
    cfg["continues"] = {"checkpoint": cfg["init"], "epochs": len(ckpt["history"]),
                        "recipe": training_record(prior, ckpt["history"], "")["recipe"],
                        "earlier": earlier or None}
    cfg["_history"] = ckpt["history"]
    if rt["master"]:
        print(f"continuing {cfg['init']} after its {len(ckpt['history'])} epochs (test top-1 "
              f"{ckpt['history'][-1]['test_top1']:.4f}): " + " ".join(f"{k}={cfg[k]}" for k in STRUCTURE), flush=True)
    return model, []


def adopt_checkpoint_structure(cfg):
    """--init CKPT: take the network's structure from the checkpoint before the datasets are sized by it."""
    from training import init_weights
    try:
        if not cfg["init"] or init_weights.source_kind(cfg["init"]) != "checkpoint":
            return
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    prior = torch.load(cfg["init"], map_location="cpu", weights_only=False)["config"]
    cfg.update({k: prior[k] for k in STRUCTURE})


# Training images that set a package's BatchNorm back (--init PACKAGE --batch-norm): enough for each channel's
# mean and variance to be within a few percent, one forward pass on a CPU.
UNFOLD_IMAGES = 1024


def make_model(cfg, rt, num_classes, train_ds):
    """(model, names of its new modules). With --init a .pth/.onnx also sets cfg's arch, two_tower and width.

    A resumed run builds the same model the same way (the source gives the structure), then loads its
    checkpoint over the loaded weights.
    """
    from training import init_weights
    if not cfg["init"]:
        return build_model(cfg["arch"], num_classes, cfg["input_size"], cfg["two_tower"], cfg["width"],
                           cfg["dropout"], cfg["batch_norm"]), []
    try:
        kind = init_weights.source_kind(cfg["init"])
        if kind == "checkpoint":
            return continue_checkpoint(cfg, rt, num_classes)
        if kind == "package":
            model = build_model(cfg["arch"], num_classes, cfg["input_size"], cfg["two_tower"], cfg["width"],
                                cfg["dropout"], cfg["batch_norm"])
            new = init_weights.init_from_package(model, cfg["init"])
            head = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
            fresh, loaded = ([head] if new else []), "every layer" + (" but the last" if new else "")
            if not new:  # the same classes: another cycle of the package's training, and the manifest says so
                with open(os.path.join(cfg["init"], "manifest.json")) as f:
                    prior = json.load(f).get("training", {})
                cfg["continues"] = {"package": os.path.basename(os.path.normpath(cfg["init"])),
                                    "epochs": prior.get("epochs", 0), "wall_seconds": prior.get("wall_seconds", 0),
                                    "recipe": prior.get("recipe"), "earlier": prior.get("continues")}
            if cfg["batch_norm"]:
                step = max(1, len(train_ds) // UNFOLD_IMAGES)  # spread over the set, not its first classes
                xs = torch.stack([train_ds[i][0] for i in range(0, len(train_ds), step)][:UNFOLD_IMAGES])
                n = init_weights.unfold_batch_norm(model, xs)
                loaded += f", {n} BatchNorm layers set to undo their statistics on {len(xs)} training images"
        else:
            source, _ = init_weights.load_source(cfg["init"])
            if cfg["source_input"] == "caffe":
                init_weights.bgr_to_rgb(source)
            cfg.update(init_weights.choose_arch(source, cfg["init"]))
            model, names, fresh = finetune_model(source, num_classes, cfg["input_size"],
                                                 cfg["dropout"] if cfg["dropout"] >= 0 else 0.5)
            loaded = ", ".join(names)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    if rt["master"]:
        tower = " --two-tower" if cfg["two_tower"] else ""
        print(f"initialised from {cfg['init']}: --arch {cfg['arch']}{tower} --width {cfg['width']:g}; loaded "
              f"{loaded}; new: {', '.join(fresh) or 'none'}", flush=True)
    return model, fresh


# Training images behind the BatchNorm statistics of the per-epoch look at the running weight average (the
# exported average uses the whole training set): a few seconds on a CPU, within ~0.1 point of the full set.
SWA_CURVE_IMAGES = 4096


def average_with_statistics(swa, cfg, rt, train_ds, epoch, max_images=0):
    """The weight average, its BatchNorm statistics measured on (up to max_images) training images."""
    n = recompute_batch_norm(swa.model, make_loader(train_ds, cfg, rt, True, epoch), rt["device"], max_images)
    if rt["master"] and not max_images:
        print(f"weight average of {swa.count} epochs: BatchNorm statistics from {n} training images", flush=True)
    return swa.model


def main(argv=None):
    cfg = parse_flags(sys.argv[1:] if argv is None else argv)
    if cfg["from_torchvision"]:
        return convert(cfg, cfg["from_torchvision"], "torchvision")
    if cfg["from_onnx"]:
        return convert(cfg, cfg["from_onnx"], "onnx")
    rt = setup_runtime(cfg)
    adopt_checkpoint_structure(cfg)
    train_ds, test_ds, labels, preprocess = make_datasets(cfg)
    model, fresh = make_model(cfg, rt, len(labels), train_ds)
    groups, lines = param_groups(model, fresh, cfg["lr"], cfg["head_lr_ratio"], cfg["freeze_features"])
    if rt["master"] and cfg["init"]:
        print("optimised parameters:\n" + "\n".join(lines), flush=True)
    optimizer = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    scheduler = make_scheduler(cfg, optimizer)
    scaler = make_scaler(rt["cuda"] and cfg["amp"])
    # a warm restart numbers its epochs on from the checkpoint it continues, and seeds new data orders
    history = cfg.pop("_history", [])
    offset, start_epoch = len(history), 0
    swa_state = None
    if cfg["resume"]:
        # the checkpoint holds numpy/python RNG states: PyTorch >= 2.6 loads weights_only by default
        ckpt = torch.load(cfg["resume"], map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler and ckpt["scheduler"]:
            scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, history = ckpt["epoch"], ckpt["history"]
        swa_state = ckpt.get("swa")
        if rt["rank"] < len(ckpt["rng"]):
            set_rng_state(ckpt["rng"][rt["rank"]])
        if rt["master"]:
            print(f"resumed {cfg['resume']} at epoch {start_epoch}", flush=True)
    trained_on = "cuda:" + torch.cuda.get_device_name(rt["device"]) if rt["cuda"] else "cpu"
    if cfg["export_only"]:
        if cfg["swa_epochs"] and swa_state:  # the run's product is its weight average
            swa = WeightAverage(model)
            swa.load_state_dict(swa_state)
            model = average_with_statistics(swa, cfg, cpu_runtime(rt), train_ds, offset + start_epoch)
        return export(model, cfg, rt, test_ds, labels, preprocess, history, history[-1].get("device", trained_on)
                      if history else trained_on)
    model.to(rt["device"])
    if rt["cuda"] and cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    swa = WeightAverage(model) if cfg["swa_epochs"] else None
    if swa and swa_state:
        swa.load_state_dict(swa_state)
    optimizer.load_state_dict(optimizer.state_dict())  # moves optimiser state onto the model's device
    if rt["ddp"]:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[rt["device"].index] if rt["cuda"] else None)
    if cfg["compile"] and hasattr(torch, "compile"):
        model = torch.compile(model)
    if rt["master"]:
        os.makedirs(cfg["out"], exist_ok=True)
        with open(os.path.join(cfg["out"], "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        print(f"{cfg['arch']} {count_parameters(unwrap(model)):,} parameters, input {cfg['input_size']}, "
              f"{len(train_ds)} train / {len(test_ds)} test images, {rt['world']} process(es) on {trained_on}, "
              f"{torch.get_num_threads()} threads", flush=True)
    n_epoch_test = cfg["epoch_test_subset"] or len(test_ds)
    test_loader = make_loader(Subset(test_ds, range(min(n_epoch_test, len(test_ds)))), cfg, rt, False, 0)
    confusion = None
    last_epoch = min(cfg["epochs"], start_epoch + cfg["stop_after"]) if cfg["stop_after"] else cfg["epochs"]
    for epoch in range(start_epoch, last_epoch):
        t0 = time.time()
        row = train_epoch(model, make_loader(train_ds, cfg, rt, True, offset + epoch), optimizer, scaler, cfg, rt,
                          epoch)
        ev = evaluate(model, test_loader, rt, len(labels))
        confusion = ev.pop("confusion")
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(ev["test_top1"])
        elif scheduler:
            scheduler.step()
        row.update(ev, epoch=offset + epoch + 1, lr=optimizer.param_groups[0]["lr"], epoch_seconds=round(time.time() - t0, 1),
                   device=trained_on)
        if swa and epoch >= cfg["epochs"] - cfg["swa_epochs"]:
            swa.add(unwrap(model))
            average = average_with_statistics(swa, cfg, rt, train_ds, offset + epoch, SWA_CURVE_IMAGES)
            row["avg_test_top1"] = evaluate(average, test_loader, rt, len(labels))["test_top1"]
        history.append(row)
        rngs = [rng_state()]
        if rt["ddp"]:
            rngs = [None] * rt["world"]
            dist.all_gather_object(rngs, rng_state())
        if rt["master"]:
            print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} top-1 {row['train_top1']:.4f} | test loss "
                  f"{row['test_loss']:.4f} top-1 {row['test_top1']:.4f} top-5 {row['test_top5']:.4f} | lr "
                  f"{row['lr']:.5f} | {row['epoch_seconds']:.0f}s" + (f" | skipped {row['skipped']}" if row["skipped"] else "")
                  + (f" | average of {swa.count}: test top-1 {row['avg_test_top1']:.4f}" if "avg_test_top1" in row else ""),
                  flush=True)
            save_checkpoint(os.path.join(cfg["out"], "ckpt.pt"), model, optimizer, scheduler, scaler, cfg,
                            epoch + 1, history, rngs, swa)
            write_metrics(cfg["out"], history, confusion, labels)
    if rt["master"] and cfg["export_dir"] and last_epoch == cfg["epochs"]:
        if swa:
            model = average_with_statistics(swa, cfg, rt, train_ds, offset + last_epoch)
        export(model, cfg, rt, test_ds, labels, preprocess, history, trained_on)
    if rt["ddp"]:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
