"""Convert weights trained elsewhere into a package without training: `train.py --from-torchvision FILE.pth`
and `train.py --from-onnx FILE.onnx`.

The sample logits are computed in the served arithmetic and in fp32 from seeded random inputs (no dataset is
read), and the manifest's metrics say the model was not evaluated here.
"""

import datetime
import os

import torch
import torch.nn as nn

from training import data as D
from training import init_weights
from training.onnx_import import check_shapes
from training.package import export_package, imagenet_labels

KINDS = {"torchvision": "torchvision AlexNet weights", "onnx": "ONNX graph"}


def read_labels(labels_file: str, units: int) -> list:
    """`labels_file` (one name per line) or the 1000 ImageNet classes; their count must match the last layer."""
    if labels_file:
        with open(labels_file) as f:
            labels = [line.strip() for line in f if line.strip()]
    else:
        labels = imagenet_labels()
    if len(labels) != units:
        raise SystemExit(
            f"error: the model has {units} outputs but {labels_file or 'the ImageNet label list'} "
            f"holds {len(labels)} labels" + ("" if labels_file else "; pass --labels FILE")
        )
    return labels


def load(source_path: str, kind: str, source_input: str, input_size: int) -> tuple:
    """(model, input side): the source's layers, conv1 turned to RGB for a Caffe source; a graph that leaves its
    input size open takes `input_size`. Anything unusable exits with its message (status 1)."""
    try:
        model, size = init_weights.load_source(source_path)
        if source_input == "caffe":
            init_weights.bgr_to_rgb(model)
        if kind == "onnx" and not size:  # a graph with an open input size: the flag says which
            size = input_size
            check_shapes(model, size, source_path)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e
    return model, size


def convert(cfg: dict, source_path: str, kind: str) -> dict:
    """A torchvision .pth ('torchvision') or an ONNX graph ('onnx') -> the package at cfg['export_dir']."""
    assert kind in KINDS, kind
    model, size = load(source_path, kind, cfg["source_input"], cfg["input_size"])
    try:
        family = init_weights.choose_arch(model, source_path)
    except ValueError:  # converted all the same: the Worker runs any chain of the family's layers
        family = {"arch": "alexnet-family"}
    units = [m for m in model.classifier if isinstance(m, nn.Linear)][-1].out_features
    labels = read_labels(cfg["labels"], units)
    gen = torch.Generator().manual_seed(cfg["seed"])
    xs = torch.randn(cfg["samples"], 3, size, size, generator=gen)
    mid = cfg["model_id"] or os.path.basename(os.path.normpath(cfg["export_dir"]))
    training = {
        **family,
        "source": f"{KINDS[kind]} (converted, not trained here)",
        "weights_file": os.path.basename(source_path),
        "source_input": cfg["source_input"],
        "torch": torch.__version__.split("+")[0],
        "date": datetime.date.today().isoformat(),
    }
    metrics = {"dataset": "not evaluated here"}
    if kind == "torchvision":
        metrics["dataset"] += " (torchvision reports ImageNet val top-1 0.5652, top-5 0.7907 for its fp32 weights)"
    stats = (D.CAFFE_MEAN, D.CAFFE_STD) if cfg["source_input"] == "caffe" else (D.IMAGENET_MEAN, D.IMAGENET_STD)
    manifest = export_package(
        model,
        cfg["export_dir"],
        mid,
        size,
        D.folder_preprocess(size, *stats),
        labels,
        xs,
        metrics,
        training,
        onnx=cfg["onnx"] and kind != "onnx",
        convolutions=cfg["convolutions"],
    )
    print(f"wrote {cfg['export_dir']} ({family['arch']}, {size}x{size}, {len(labels)} classes)")
    return manifest
