"""The network a run starts from: a fresh one, or one built around `--init` weights, with its lineage.

`--init` takes four kinds of source (training/init_weights.py tells them apart):
- a train.py checkpoint: another cycle of the same network (its structure, weights, BatchNorm statistics and
  history), continued under this run's recipe; `checkpoint_structure` reads the structure flags first, since
  the datasets are sized by them;
- a model package: its weights in a network built from the flags; on the package's classes another cycle of
  its training (with --batch-norm, BatchNorm put back behind its folded layers), on other classes a new head;
- a torchvision .pth or an ONNX graph: fine-tuning, every layer but the last loaded, the architecture set by
  the source's layers.
"""

import dataclasses

import torch
import torch.nn as nn

from training import init_weights, lineage
from training.checkpoint import load_checkpoint
from training.finetune import finetune_model
from training.model import build_model

# Training images that set a package's BatchNorm back (--init PACKAGE --batch-norm): enough for each channel's
# mean and variance to be within a few percent, one forward pass on a CPU.
UNFOLD_IMAGES = 1024


@dataclasses.dataclass
class Start:
    model: nn.Module
    fresh: list  # names of the modules that start untrained (they learn at the full lr)
    structure: dict  # config values the source decides (.pth/.onnx: arch, two_tower, width)
    continues: dict = None  # the lineage record when this run is another cycle of an earlier one
    history: list = dataclasses.field(default_factory=list)  # the earlier cycle's epochs, numbered on from
    summary: str = ""  # one line saying what was loaded, for the log


def source_kind(cfg: dict) -> str:
    """init_weights.source_kind of --init ('' without one); an unusable path exits with its message."""
    if not cfg["init"]:
        return ""
    try:
        return init_weights.source_kind(cfg["init"])
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e


def checkpoint_structure(cfg: dict) -> dict:
    """--init CKPT: the network's structure flags from the checkpoint ({} for any other source)."""
    if source_kind(cfg) != "checkpoint":
        return {}
    prior = load_checkpoint(cfg["init"])["config"]
    return {k: prior[k] for k in lineage.STRUCTURE}


def fresh_model(cfg: dict, num_classes: int) -> nn.Module:
    return build_model(
        cfg["arch"], num_classes, cfg["input_size"], cfg["two_tower"], cfg["width"], cfg["dropout"], cfg["batch_norm"]
    )


def start_model(cfg: dict, num_classes: int, train_ds) -> Start:
    """The run's first network. A resumed run builds the same one the same way, then loads its checkpoint."""
    kind = source_kind(cfg)
    if not kind:
        return Start(fresh_model(cfg, num_classes), [], {})
    if kind == "checkpoint":
        return continue_checkpoint(cfg, num_classes)
    try:
        if kind == "package":
            start = from_package(cfg, num_classes, train_ds)
        else:
            start = fine_tune(cfg, num_classes)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e
    arch = {**cfg, **start.structure}
    tower = " --two-tower" if arch["two_tower"] else ""
    start.summary = (
        f"initialised from {cfg['init']}: --arch {arch['arch']}{tower} --width {arch['width']:g}; loaded "
        f"{start.summary}; new: {', '.join(start.fresh) or 'none'}"
    )
    return start


def continue_checkpoint(cfg: dict, num_classes: int) -> Start:
    """--init CKPT: the checkpoint's network and weights (BatchNorm statistics included) under this run's recipe;
    cfg must already hold the checkpoint's structure (checkpoint_structure)."""
    ckpt = load_checkpoint(cfg["init"])
    model = fresh_model(cfg, num_classes)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:  # another class count: that is fine-tuning, which a package or .pth serves
        raise SystemExit(f"error: --init {cfg['init']}: its network does not fit {num_classes} classes: {e}") from e
    history = ckpt["history"]
    summary = (
        f"continuing {cfg['init']} after its {len(history)} epochs (test top-1 {history[-1]['test_top1']:.4f}): "
        + " ".join(f"{k}={cfg[k]}" for k in lineage.STRUCTURE)
    )
    return Start(model, [], {}, lineage.from_checkpoint(cfg["init"], ckpt), history, summary)


def from_package(cfg: dict, num_classes: int, train_ds) -> Start:
    """--init PACKAGE: its weights in the flags' network; the same classes continue its training."""
    model = fresh_model(cfg, num_classes)
    new = init_weights.init_from_package(model, cfg["init"])
    head = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    loaded = "every layer" + (" but the last" if new else "")
    continues = None if new else lineage.from_package(cfg["init"])
    if cfg["batch_norm"]:
        step = max(1, len(train_ds) // UNFOLD_IMAGES)  # spread over the set, not its first classes
        xs = torch.stack([train_ds[i][0] for i in range(0, len(train_ds), step)][:UNFOLD_IMAGES])
        n = init_weights.unfold_batch_norm(model, xs)
        loaded += f", {n} BatchNorm layers set to undo their statistics on {len(xs)} training images"
    return Start(model, [head] if new else [], {}, continues, summary=loaded)


def fine_tune(cfg: dict, num_classes: int) -> Start:
    """--init .pth/.onnx: the source's layers, a new last layer for num_classes; the source sets the arch."""
    source, _ = init_weights.load_source(cfg["init"])
    if cfg["source_input"] == "caffe":
        init_weights.bgr_to_rgb(source)
    structure = init_weights.choose_arch(source, cfg["init"])
    dropout = cfg["dropout"] if cfg["dropout"] >= 0 else 0.5
    model, names, fresh = finetune_model(source, num_classes, cfg["input_size"], dropout)
    return Start(model, fresh, structure, summary=", ".join(names))
