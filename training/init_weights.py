"""Start a model from weights trained elsewhere (`train.py --init`).

Sources understood here (`source_kind` tells them apart):
- a train.py checkpoint (`ckpt.pt`): a second training cycle (warm restart) of the same network, BatchNorm
  layers included, with a new optimiser and schedule; scripts/train.py rebuilds the model from the
  checkpoint's own flags and carries its history on, so the curves and the manifest cover both cycles;
- a torchvision AlexNet state_dict (`.pth`, `.pt`), at any width: `load_source` builds torchvision's layout;
- an AlexNet-family ONNX graph (`.onnx`): training/onnx_import.py;
- an alexnet-edge model package directory (docs/model-package.md): its int8 weights times their per-channel
  scales, laid back from the Worker's layout (HWIO convolutions, NHWC flatten order) into PyTorch's. This is
  how a served model keeps training: the dequantized weights are exactly what the Worker computes with.
  With --batch-norm, `unfold_batch_norm` puts BatchNorm back behind the folded layers (a package's BatchNorm
  was folded away at export), set so the network computes what the package computes.

A package fills a model built from the command line's --arch: every layer whose shape matches is loaded; the
last dense layer is loaded only when the class count matches, else it keeps its fresh initialisation (a new
head for a new dataset). A .pth or .onnx source instead decides the architecture (`choose_arch`) and
training/finetune.py builds the model around its layers.
"""

import json
import os

import torch
import torch.nn as nn

from training import safetensors_io
from training.model import FeaturesThenClassifier, dropout_classifier

# Channel counts at width 1.0: torchvision's AlexNet and the paper's (Caffe's bvlc_alexnet has the paper's).
TV_CHANNELS, PAPER_CHANNELS = (64, 192, 384, 256, 256), (96, 256, 384, 384, 256)
TWO_TOWER_GROUPS = (1, 2, 1, 2, 2)  # the paper's GPU split: conv2, conv4, conv5 see only their own tower


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
    layers, first_dense = [], True
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
            w = (q * scale).permute(3, 2, 0, 1)  # HWIO -> OIHW; scale is per O (last axis)
        else:
            w = q * scale[:, None]
            if first_dense:  # NHWC columns -> PyTorch's CHW flatten order
                hw = w.shape[1] // feature_c
                side = int(round(hw**0.5))
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
    for i, ((name, w, b), m) in enumerate(zip(source, targets, strict=True)):
        if tuple(w.shape) != tuple(m.weight.shape):
            if i == len(targets) - 1:  # the head: another class count means a new head
                fresh.append(name)
                continue
            raise ValueError(f"{package_dir}: {name} is {tuple(w.shape)}, the model wants {tuple(m.weight.shape)}")
        m.weight.copy_(w)
        m.bias.copy_(b)
    return fresh


@torch.no_grad()
def unfold_batch_norm(model: nn.Module, images: torch.Tensor) -> int:
    """Make every BatchNorm of `model` the identity on `images`' activations; returns how many were set.

    A package holds BatchNorm folded into the layer before it, so loading it into a --batch-norm network puts a
    fresh BatchNorm behind layers that already carry its effect. In training mode a BatchNorm divides by the
    batch's own statistics, so it cannot simply be left as the identity: it is set to undo them instead, with
    running_mean = beta = the channel's mean and running_var = the channel's variance, gamma = its std. Then
    eval mode computes exactly the package's function, and training mode nearly so (batch statistics differ
    from these by sampling noise), and a second training cycle starts where the first ended.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    stats = {}

    def grab(mod, inp):
        x = inp[0].transpose(0, 1).reshape(inp[0].shape[1], -1).double()  # channels first, all else flat
        stats[mod] = (x.mean(1), x.var(1, unbiased=False))

    # a fresh BatchNorm in eval mode is x / sqrt(1 + eps): the inputs it sees are the package's
    hooks = [bn.register_forward_pre_hook(grab) for bn in norms]
    was_training = model.training
    for bn in norms:
        bn.reset_running_stats()
        bn.reset_parameters()
    model.eval()
    model(images)
    model.train(was_training)
    for h in hooks:
        h.remove()
    for bn in norms:
        mean, var = stats[bn]
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_((var + bn.eps).sqrt())
        bn.bias.copy_(mean)
    return len(norms)


def is_checkpoint(path: str) -> bool:
    """A train.py checkpoint (ckpt.pt: model, optimiser, history, config) rather than a bare state_dict."""
    try:  # a bare state_dict is tensors only and loads without running any pickled code
        torch.load(path, map_location="cpu", weights_only=True)
        return False
    except Exception:  # noqa: BLE001 - the unpickler's refusals have no common class across PyTorch versions
        pass
    # a checkpoint holds numpy/python RNG states, which the tensors-only loader refuses: it is trusted as --resume
    # trusts it (your own run's file)
    obj = torch.load(path, map_location="cpu", weights_only=False)
    return isinstance(obj, dict) and {"model", "config", "history", "epoch"} <= set(obj)


def source_kind(path: str) -> str:
    """'package', 'checkpoint', 'torchvision' or 'onnx'; anything else is a ValueError naming what is understood."""
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "manifest.json")):
            raise ValueError(f"--init {path}: a directory must be a model package (it has no manifest.json)")
        return "package"
    if not os.path.exists(path):
        raise ValueError(f"--init {path}: no such file or directory")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pth", ".pt"):
        return "checkpoint" if is_checkpoint(path) else "torchvision"
    if ext == ".onnx":
        return "onnx"
    raise ValueError(
        f"--init {path}: expected a train.py checkpoint (ckpt.pt), a torchvision AlexNet state_dict "
        f"(.pth), an ONNX graph (.onnx) or a model package directory"
    )


def torchvision_alexnet(state: dict, path: str = "state_dict") -> FeaturesThenClassifier:
    """torchvision's AlexNet layout (keys features.0 ... classifier.6), sized from the tensors: any width."""
    need = [
        "features.0",
        "features.3",
        "features.6",
        "features.8",
        "features.10",
        "classifier.1",
        "classifier.4",
        "classifier.6",
    ]
    missing = [k + ".weight" for k in need if k + ".weight" not in state]
    extra = sorted(k for k in state if k.rsplit(".", 1)[0] not in need)
    if missing or extra:
        raise ValueError(f"{path} is not a torchvision AlexNet state_dict (missing {missing}, unexpected {extra})")
    c = [state[k + ".weight"].shape[0] for k in need[:5]]
    model = FeaturesThenClassifier()
    model.features = nn.Sequential(
        nn.Conv2d(3, c[0], 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c[2], c[3], 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c[3], c[4], 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )
    fc6, fc8 = state["classifier.1.weight"], state["classifier.6.weight"]
    model.classifier = dropout_classifier(fc6.shape[1], fc6.shape[0], fc8.shape[0], 0.5)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: the tensors do not fit torchvision's AlexNet layout: {e}") from e
    return model.eval()


def load_source(path: str) -> tuple:
    """(model with features/classifier, input side it was made for or 0) from a .pth or .onnx file."""
    kind = source_kind(path)
    if kind == "torchvision":
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: safe to load
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict")
        return torchvision_alexnet(state, path), 224
    if kind == "onnx":
        from training.onnx_import import read_onnx

        model, input_size, _ = read_onnx(path)
        return model, input_size
    raise ValueError(f"{path}: a package is loaded with init_from_package, into a model built from --arch")


def choose_arch(model: nn.Module, path: str) -> dict:
    """{arch, two_tower, width} of training/model.py that the source's layers are, or a ValueError saying why not."""
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    dense = [m for m in model.classifier if isinstance(m, nn.Linear)]
    lrn = any(isinstance(m, nn.LocalResponseNorm) for m in model.features)
    groups = tuple(m.groups for m in convs)
    kernels = tuple(m.kernel_size[0] for m in convs)
    channels = tuple(m.out_channels for m in convs)
    if len(convs) == 5 and len(dense) == 3 and kernels == (11, 5, 3, 3, 3):
        if not lrn and set(groups) == {1}:
            width = channels[0] / TV_CHANNELS[0]
            if all(abs(c - n * width) <= 2 for c, n in zip(channels, TV_CHANNELS, strict=True)):
                return {"arch": "alexnet-tv", "two_tower": False, "width": round(width, 4)}
        if lrn and groups in (TWO_TOWER_GROUPS, (1,) * 5):
            width = channels[0] / PAPER_CHANNELS[0]
            if all(abs(c - n * width) <= 2 for c, n in zip(channels, PAPER_CHANNELS, strict=True)):
                return {"arch": "alexnet", "two_tower": groups == TWO_TOWER_GROUPS, "width": round(width, 4)}
    raise ValueError(
        f"--init {path}: cannot choose --arch: {len(convs)} convolutions (kernels {list(kernels)}, channels "
        f"{list(channels)}, groups {list(groups)}), {'with' if lrn else 'no'} LRN, {len(dense)} dense layers. "
        f"Understood: torchvision's AlexNet (alexnet-tv: 64-192-384-256-256, no LRN) and the paper's / Caffe's "
        f"(alexnet: 96-256-384-384-256 with LRN, groups 1-2-1-2-2 for --two-tower), at any width, 3 dense layers"
    )


@torch.no_grad()
def bgr_to_rgb(model: nn.Module) -> nn.Module:
    """Reverse conv1's input channels: a model trained on BGR pixels (Caffe) then takes RGB ones, as served."""
    conv1 = next(m for m in model.features if isinstance(m, nn.Conv2d))
    conv1.weight.copy_(conv1.weight.flip(1))
    return model
