"""Fine-tuning: a model built around loaded layers with a new last layer, and the parameter groups that train it.

The recipe is the common one (PyTorch's "Finetuning Torchvision Models" tutorial, which uses AlexNet; Caffe's
"Fine-tuning CaffeNet for Style Recognition on Flickr Style" example): keep every layer but the last, replace
the last by one sized to the new classes, optionally freeze the features, and let the new layer learn faster
than the loaded ones (Caffe's example: base_lr 0.001 for the loaded layers, lr_mult 10 on the new one).
"""

import copy

import torch
import torch.nn as nn

from training.model import FeaturesThenClassifier, dropout_classifier, feature_shape
from training.onnx_import import check_pools

HEAD = "classifier.6"  # the last dense layer's module name in dropout_classifier (torchvision's key)


@torch.no_grad()
def finetune_model(source: nn.Module, num_classes: int, input_size: int, dropout: float) -> tuple:
    """(model, names of loaded layers, names of new layers): the source's features, its fc6/fc7, a new head.

    fc6 is loaded only when the feature map at `input_size` has the source's size (the input the source was
    made for, e.g. 224 for torchvision's weights); otherwise it is new too, and the run says so.
    """
    features = copy.deepcopy(source.features)
    check_pools(features, input_size, "the --init source")
    c, h, w = feature_shape(features, input_size)
    src_dense = [m for m in source.classifier if isinstance(m, nn.Linear)]
    if len(src_dense) != 3:
        raise ValueError(f"the --init source has {len(src_dense)} dense layers; an AlexNet has 3 (fc6, fc7, fc8)")
    classifier = dropout_classifier(c * h * w, src_dense[0].out_features, num_classes, dropout)
    loaded = [f"features.{i}" for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    fresh = []
    targets = (("classifier.1", classifier[1]), ("classifier.4", classifier[4]))
    for (name, target), src in zip(targets, src_dense[:2], strict=True):  # fc6 and fc7; fc8 is new
        if target.weight.shape == src.weight.shape:
            target.weight.copy_(src.weight)
            target.bias.copy_(src.bias)
            loaded.append(name)
        else:
            fresh.append(name)
    head = classifier[6]
    nn.init.normal_(head.weight, std=0.01)  # small logits at the start: the loaded layers see gentle gradients
    nn.init.zeros_(head.bias)
    fresh.append(HEAD)
    model = FeaturesThenClassifier()
    model.features, model.classifier = features, classifier
    return model, loaded, fresh


def param_groups(model: nn.Module, fresh: list, lr: float, ratio: float, freeze_features: bool) -> tuple:
    """(optimiser param groups, one line per trained parameter): new layers at `lr`, loaded ones at lr / ratio.

    With no new layer (continuing a package on the same classes) every layer learns at `lr`. Frozen parameters
    get requires_grad False and stay out of the optimiser. Each group keeps `lr_mult`, which schedules that
    set the lr themselves (warm-up, cosine) multiply by.
    """
    groups = {1.0: [], 1.0 / ratio: []}
    lines = []
    for name, p in model.named_parameters():
        if freeze_features and name.startswith("features."):
            p.requires_grad_(False)
            continue
        new = any(name.startswith(f + ".") for f in fresh)
        mult = 1.0 if (new or not fresh) else 1.0 / ratio
        groups[mult].append(p)
        lines.append(f"  {name:24s} {tuple(p.shape)!s:22s} lr x {mult:g}" + ("  (new)" if new else ""))
    out = [{"params": ps, "lr": lr * mult, "lr_mult": mult} for mult, ps in groups.items() if ps]
    if not out:
        raise ValueError("no parameter is left to train")
    return out, lines
