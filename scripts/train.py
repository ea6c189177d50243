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

  # export a checkpoint without training
  /usr/bin/python3 scripts/train.py --export-only --resume runs/fmnist-64/ckpt.pt --export-dir model/x-v2
  # re-export a package's own weights in the current served arithmetic (new id: packages are immutable)
  /usr/bin/python3 scripts/train.py --export-only --init model/alexnet-fmnist-64-v4 --input-size 64 \
      --export-dir model/x-v5
  # convert torchvision's ImageNet AlexNet weights, or an AlexNet-family ONNX graph, into a package
  /usr/bin/python3 scripts/train.py --from-torchvision alexnet-owt-7be5be79.pth \
      --export-dir model/alexnet-tv-imagenet-v1
  /usr/bin/python3 scripts/train.py --from-onnx bvlc_alexnet.onnx --source-input caffe \
      --export-dir model/bvlc-alexnet-v1

Every config name is a flag: `batch_size` is `--batch-size 64`, booleans are `--amp` / `--no-amp`.
Written beside the checkpoint (rank 0 only): ckpt.pt, config.json, metrics.csv, curves.png, confusion.png.
The steps live in training/: warm_start (--init), schedule, checkpoint, lineage (the manifest's training
record), export, convert (--from-torchvision, --from-onnx), flags (this config block as --help).
"""

import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Subset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training import data as D  # noqa: E402
from training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state  # noqa: E402
from training.convert import convert  # noqa: E402
from training.evaluate import evaluate  # noqa: E402
from training.export import export  # noqa: E402
from training.finetune import param_groups  # noqa: E402
from training.flags import parse_flags  # noqa: E402
from training.model import count_parameters  # noqa: E402
from training.plots import write_run_records  # noqa: E402
from training.progress import epoch_progress  # noqa: E402
from training.runtime import cpu_runtime, make_loader, make_scaler, setup_runtime, unwrap  # noqa: E402
from training.schedule import get_lr, make_scheduler, set_lr, step_scheduler  # noqa: E402
from training.swa import WeightAverage, recompute_batch_norm  # noqa: E402
from training.warm_start import checkpoint_structure, start_model  # noqa: E402

# The config block keeps its aligned columns (the formatter leaves it alone): --help is read from its comments.
# fmt: off
# ----------------------------------------------------------------------------- config
# data
dataset = "fashion-mnist"   # "fashion-mnist", or an image-folder root holding train/<class>/ and val/<class>/
fmnist_dir = D.FMNIST_DIR   # where the Fashion-MNIST IDX .gz files are (Debian's dataset-fashion-mnist)
train_subset = 0            # use only the first N training images (0 = all); for tests and probes
test_subset = 0             # use only the first N test images (0 = all)
val_fraction = 0.05         # share of the training images held out of training (stratified by class, a fixed
                            # seed: the same images every run) to fit the package's calibration on at export:
                            # temperature and the "unknown" threshold (docs/model-package.md; 0 = none)
temperature_fit = "nll"     # how the calibration's temperature is chosen on the held-out images: nll (least
                            # negative log-likelihood, Guo et al. 2017) or ece (least ECE in 15 bins)
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
convolutions = "int8"       # where the Worker runs convolutions: int8 (our kernels) or fp32 (tfjs-wasm, for a model
                            # whose int8 error is too large)
from_onnx = ""              # path to an AlexNet-family ONNX graph (torchvision or Caffe layout): convert it into a
                            # package at the graph's input size (--input-size when the graph leaves it open)
labels = ""                 # --from-onnx / --from-torchvision: a text file of class names, one per line in output
                            # order; empty: the 1000 ImageNet classes
onnx = True                 # also write <export dir>.onnx (fp32) beside the package, for benchmarks
stop_after = 0              # stop after this many epochs in this invocation (0 = run to --epochs); preemptible runs
note = ""                   # free text recorded in the manifest's training record
config_keys = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, bool, str))]
# -----------------------------------------------------------------------------
# fmt: on

# Training images behind the BatchNorm statistics of the per-epoch look at the running weight average (the
# exported average uses the whole training set): a few seconds on a CPU, within ~0.1 point of the full set.
SWA_CURVE_IMAGES = 4096


def train_epoch(model, loader, optimizer, scaler, cfg, rt, epoch):
    """One pass over the loader; the lr is set every step (get_lr) unless a torch scheduler owns it."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)  # on the device: no sync per step
    correct = torch.zeros((), dtype=torch.int64, device=rt.device)
    seen = skipped = 0
    n = len(loader)
    total = min(len(loader.sampler), n * loader.batch_size) * rt.world  # drop_last may leave a partial batch out
    bar = epoch_progress(total, f"epoch {epoch + 1}/{cfg['epochs']}", rt.master)
    amp = rt.cuda and cfg["amp"]
    for i, (x, y, bad) in enumerate(loader):
        skipped += bad
        bar.update((len(y) + bad if x is not None else bad) * rt.world)
        if x is None:
            continue
        lr = get_lr(cfg, epoch + i / n)
        if lr is not None:
            set_lr(optimizer, lr)
        x, y = x.to(rt.device, non_blocking=True), y.to(rt.device, non_blocking=True)
        if rt.cuda and cfg["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
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
    if rt.ddp:
        dist.all_reduce(stats)
    count = max(1, stats[2].item())
    return {"train_loss": stats[0].item() / count, "train_top1": stats[1].item() / count, "skipped": int(stats[3])}


def average_with_statistics(swa, cfg, rt, train_ds, epoch, max_images=0):
    """The weight average, its BatchNorm statistics measured on (up to max_images) training images."""
    n = recompute_batch_norm(swa.model, make_loader(train_ds, cfg, rt, True, epoch), rt.device, max_images)
    if rt.master and not max_images:
        print(f"weight average of {swa.count} epochs: BatchNorm statistics from {n} training images", flush=True)
    return swa.model


def main(argv=None):
    with open(os.path.abspath(__file__)) as f:
        source = f.read()
    defaults = {k: globals()[k] for k in config_keys}
    cfg = parse_flags(sys.argv[1:] if argv is None else argv, source, defaults, __doc__)
    if cfg["temperature_fit"] not in ("nll", "ece"):
        sys.exit(f"--temperature-fit must be nll or ece, not {cfg['temperature_fit']!r}")
    if cfg["from_torchvision"]:
        return convert(cfg, cfg["from_torchvision"], "torchvision")
    if cfg["from_onnx"]:
        return convert(cfg, cfg["from_onnx"], "onnx")
    rt = setup_runtime(cfg["device"], cfg["threads"], cfg["seed"])
    cfg.update(checkpoint_structure(cfg))  # --init CKPT: its network, before the datasets are sized by it
    train_ds, test_ds, labels, preprocess = D.make_datasets(cfg)
    train_ds, val_ds = D.split_validation(cfg, train_ds)  # val_ds: None with --val-fraction 0
    start = start_model(cfg, len(labels), train_ds)
    cfg.update(start.structure)  # --init .pth/.onnx: the source's arch, two_tower, width
    model, continues = start.model, start.continues
    if rt.master and start.summary:
        print(start.summary, flush=True)
    groups, lines = param_groups(model, start.fresh, cfg["lr"], cfg["head_lr_ratio"], cfg["freeze_features"])
    if rt.master and cfg["init"]:
        print("optimised parameters:\n" + "\n".join(lines), flush=True)
    optimizer = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    scheduler = make_scheduler(cfg, optimizer)
    scaler = make_scaler(rt.cuda and cfg["amp"])
    # a warm restart numbers its epochs on from the checkpoint it continues, and seeds new data orders
    history, start_epoch, swa_state = list(start.history), 0, None
    offset = len(history)
    if cfg["resume"]:
        ckpt = load_checkpoint(cfg["resume"])
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler and ckpt["scheduler"]:
            scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, history, swa_state, continues = ckpt["epoch"], ckpt["history"], ckpt["swa"], ckpt["lineage"]
        offset = len(history) - start_epoch  # the earlier cycles' epochs: the checkpoint knows, with or without --init
        if rt.rank < len(ckpt["rng"]):
            set_rng_state(ckpt["rng"][rt.rank])
        if rt.master:
            print(f"resumed {cfg['resume']} at epoch {start_epoch}", flush=True)
    trained_on = "cuda:" + torch.cuda.get_device_name(rt.device) if rt.cuda else "cpu"
    if cfg["export_only"]:
        if cfg["swa_epochs"] and swa_state:  # the run's product is its weight average
            swa = WeightAverage(model)
            swa.load_state_dict(swa_state)
            model = average_with_statistics(swa, cfg, cpu_runtime(rt), train_ds, offset + start_epoch)
        trained_on = history[-1].get("device", trained_on) if history else trained_on
        return export(model, cfg, rt, test_ds, labels, preprocess, history, trained_on, continues, val_ds)

    model.to(rt.device)
    if rt.cuda and cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    swa = WeightAverage(model) if cfg["swa_epochs"] else None
    if swa and swa_state:
        swa.load_state_dict(swa_state)
    optimizer.load_state_dict(optimizer.state_dict())  # moves optimiser state onto the model's device
    if rt.ddp:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[rt.device.index] if rt.cuda else None)
    if cfg["compile"] and hasattr(torch, "compile"):
        model = torch.compile(model)
    if rt.master:
        os.makedirs(cfg["out"], exist_ok=True)
        with open(os.path.join(cfg["out"], "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        print(
            f"{cfg['arch']} {count_parameters(unwrap(model)):,} parameters, input {cfg['input_size']}, "
            f"{len(train_ds)} train / {len(test_ds)} test images, {rt.world} process(es) on {trained_on}, "
            f"{torch.get_num_threads()} threads",
            flush=True,
        )
    n_epoch_test = min(cfg["epoch_test_subset"] or len(test_ds), len(test_ds))
    test_loader = make_loader(Subset(test_ds, range(n_epoch_test)), cfg, rt, False, 0)
    last_epoch = min(cfg["epochs"], start_epoch + cfg["stop_after"]) if cfg["stop_after"] else cfg["epochs"]
    assert 0 <= start_epoch <= last_epoch <= cfg["epochs"], (start_epoch, last_epoch)
    for epoch in range(start_epoch, last_epoch):
        t0 = time.time()
        train_loader = make_loader(train_ds, cfg, rt, True, offset + epoch)
        row = train_epoch(model, train_loader, optimizer, scaler, cfg, rt, epoch)
        ev = evaluate(model, test_loader, rt, len(labels))
        confusion = ev.pop("confusion")
        step_scheduler(scheduler, ev["test_top1"])
        seconds = round(time.time() - t0, 1)
        row.update(ev, epoch=offset + epoch + 1, lr=optimizer.param_groups[0]["lr"], epoch_seconds=seconds)
        row["device"] = trained_on
        if swa and epoch >= cfg["epochs"] - cfg["swa_epochs"]:
            swa.add(unwrap(model))
            average = average_with_statistics(swa, cfg, rt, train_ds, offset + epoch, SWA_CURVE_IMAGES)
            row["avg_test_top1"] = evaluate(average, test_loader, rt, len(labels))["test_top1"]
        history.append(row)
        assert len(history) == row["epoch"], "history holds one row per epoch, earlier cycles' first"
        rngs = [rng_state()]
        if rt.ddp:
            rngs = [None] * rt.world
            dist.all_gather_object(rngs, rng_state())
        if rt.master:
            print(
                f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} top-1 {row['train_top1']:.4f} | test "
                f"loss {row['test_loss']:.4f} top-1 {row['test_top1']:.4f} top-5 {row['test_top5']:.4f} | lr "
                f"{row['lr']:.5f} | {row['epoch_seconds']:.0f}s"
                + (f" | skipped {row['skipped']}" if row["skipped"] else "")
                + (f" | average of {swa.count}: test top-1 {row['avg_test_top1']:.4f}" if swa and swa.count else ""),
                flush=True,
            )
            save_checkpoint(
                os.path.join(cfg["out"], "ckpt.pt"),
                model=unwrap(model).state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict() if scheduler else None,
                scaler=scaler.state_dict(),
                epoch=epoch + 1,
                config=cfg,
                history=history,
                rng=rngs,
                swa=swa.state_dict() if swa else None,
                lineage=continues,
            )
            write_run_records(cfg["out"], history, confusion, labels)
    if rt.master and cfg["export_dir"] and last_epoch == cfg["epochs"]:
        if swa:
            model = average_with_statistics(swa, cfg, rt, train_ds, offset + last_epoch)
        export(model, cfg, rt, test_ds, labels, preprocess, history, trained_on, continues, val_ds)
    if rt.ddp:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
