"""Start a model from weights trained elsewhere (`train.py --init`).

Sources understood here:
- an alexnet-edge model package directory (docs/model-package.md): its int8 weights times their per-channel
  scales, laid back from the Worker's layout (HWIO convolutions, NHWC flatten order) into PyTorch's. This is
  how a served model keeps training: the dequantized weights are exactly what the Worker computes with.

Every layer whose shape matches is loaded; the last dense layer is loaded only when the class count matches,
else it keeps its fresh initialisation (a new head for a new dataset). Returns the names of the new layers.
"""
import json
import os

import torch
import torch.nn as nn

from training import safetensors_io


def _linear_layers(model: nn.Module) -> list:
    """(kind, module) for every conv and dense layer in served order: conv1..convN, then fcN+1.."""
    out = [m for m in model.features if isinstance(m, nn.Conv2d)]
    out += [m for m in model.classifier if isinstance(m, nn.Linear)]
    return out


def package_state(package_dir: str) -> tuple:
    """(list of (name, fp32 weight in PyTorch layout, bias), manifest) from a package directory."""
    with open(os.path.join(package_dir, "manifest.json")) as f:
        manifest = json.load(f)
    tensors, _ = safetensors_io.read(os.path.join(package_dir, manifest["weights"]["file"]))
    layers, chw, first_dense = [], None, True
    feature_c = 3
    for layer in manifest["layers"]:
        if layer["op"] == "conv2d":
            feature_c = layer["filters"]
        if layer["op"] not in ("conv2d", "dense"):
            continue
        name = layer["name"]
        q = torch.from_numpy(tensors[name + ".weight"].astype("float32"))
        scale = torch.from_numpy(tensors[name + ".scale"].astype("float32"))
        bias = torch.from_numpy(tensors[name + ".bias"].astype("float32"))
        if layer["op"] == "conv2d":
            w = (q * scale).permute(3, 2, 0, 1)                  # HWIO -> OIHW; scale is per O (last axis)
        else:
            w = q * scale[:, None]
            if first_dense:                                       # NHWC columns -> PyTorch's CHW flatten order
                hw = w.shape[1] // feature_c
                side = int(round(hw ** 0.5))
                w = w.reshape(w.shape[0], side, side, feature_c).permute(0, 3, 1, 2).reshape(w.shape[0], -1)
            first_dense = False
        layers.append((name, w.contiguous(), bias))
    return layers, manifest


@torch.no_grad()
def init_from_package(model: nn.Module, package_dir: str) -> list:
    """Copy a package's weights into `model`; returns the names of layers left at their fresh init."""
    source, manifest = package_state(package_dir)
    targets = _linear_layers(model)
    if len(source) != len(targets):
        raise ValueError(f"{package_dir} has {len(source)} conv/dense layers, the model has {len(targets)}")
    fresh = []
    for i, ((name, w, b), m) in enumerate(zip(source, targets)):
        if tuple(w.shape) != tuple(m.weight.shape):
            if i == len(targets) - 1:   # the head: another class count means a new head
                fresh.append(name)
                continue
            raise ValueError(f"{package_dir}: {name} is {tuple(w.shape)}, the model wants {tuple(m.weight.shape)}")
        m.weight.copy_(w)
        m.bias.copy_(b)
    return fresh
