"""--init sources: what kind a path is, torchvision state_dicts at any width, BGR to RGB, a package's weights."""

import os

import numpy as np
import pytest
import torch

from onnx_sources import caffe_alexnet, tv_alexnet
from training import init_weights
from training.checkpoint import KEYS, rng_state, save_checkpoint
from training.data import FMNIST_LABELS, fmnist_preprocess
from training.model import build_model
from training.package import export_package, load_package
from training.quantize import fold_and_quantize


def test_the_kind_of_a_source_comes_from_what_the_path_holds(tmp_path):
    pth, ckpt, onnx = (str(tmp_path / n) for n in ("tv.pth", "ckpt.pt", "g.onnx"))
    torch.save(tv_alexnet(0.0625, 224, 10).state_dict(), pth)
    state = {k: None for k in KEYS}
    state.update(model={}, config={}, history=[], epoch=0, rng=[rng_state()])  # numpy states: not tensors only
    save_checkpoint(ckpt, **state)
    open(onnx, "wb").close()
    os.makedirs(tmp_path / "pkg")
    open(tmp_path / "pkg" / "manifest.json", "w").close()
    kinds = [init_weights.source_kind(p) for p in (pth, ckpt, onnx, str(tmp_path / "pkg"))]
    assert kinds == ["torchvision", "checkpoint", "onnx", "package"]
    for bad, message in ((str(tmp_path / "nope.pth"), "no such file"), (str(tmp_path), "no manifest.json")):
        with pytest.raises(ValueError, match=message):
            init_weights.source_kind(bad)
    (tmp_path / "w.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="expected a train.py checkpoint"):
        init_weights.source_kind(str(tmp_path / "w.bin"))


def test_a_torchvision_state_dict_loads_at_its_own_width_and_a_foreign_one_is_refused(tmp_path):
    source = tv_alexnet(0.125, 224, 7)
    path = str(tmp_path / "wrapped.pth")
    torch.save({"state_dict": source.state_dict()}, path)  # as some training scripts save it
    model, size = init_weights.load_source(path)
    assert size == 224 and init_weights.choose_arch(model, path) == {"arch": "alexnet-tv", "two_tower": False,
                                                                      "width": 0.125}  # fmt: skip
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
    state = source.state_dict()
    del state["classifier.6.weight"]
    with pytest.raises(ValueError, match=r"not a torchvision AlexNet state_dict \(missing \['classifier.6.weight'\]"):
        init_weights.torchvision_alexnet(state, "x.pth")


def test_the_papers_layout_is_recognised_with_and_without_towers():
    assert init_weights.choose_arch(caffe_alexnet(0.25, 227, 10), "c.onnx") == {
        "arch": "alexnet", "two_tower": True, "width": 0.25
    }  # fmt: skip
    one_tower = build_model("alexnet", 10, 227, width=0.5)
    assert init_weights.choose_arch(one_tower, "p.onnx") == {"arch": "alexnet", "two_tower": False, "width": 0.5}


def test_bgr_to_rgb_reverses_conv1s_input_channels_exactly():
    model = tv_alexnet(0.0625, 224, 10)
    before = model.features[0].weight.detach().clone()
    init_weights.bgr_to_rgb(model)
    assert torch.equal(model.features[0].weight, before[:, [2, 1, 0]])


def test_a_packages_weights_load_back_to_exactly_the_int8_layers_it_holds(tmp_path):
    torch.manual_seed(0)
    model = build_model("alexnet", 10, 67, two_tower=True, width=0.125).eval()
    out = str(tmp_path / "p-v1")
    xs = torch.randn(2, 3, 67, 67)
    export_package(model, out, "p-v1", 67, fmnist_preprocess(67), FMNIST_LABELS, xs, {}, {}, onnx=False)
    again = build_model("alexnet", 10, 67, two_tower=True, width=0.125).eval()
    assert init_weights.init_from_package(again, out) == []
    theirs, ours = fold_and_quantize(model), fold_and_quantize(again)
    for a, b in zip(theirs, ours, strict=True):
        if "q" in a:  # re-quantising the dequantised weights gives the same int8 codes and scales
            assert torch.equal(a["q"], b["q"]) and torch.allclose(a["scale"], b["scale"], rtol=1e-6, atol=0)
    _, _, samples = load_package(out)
    with torch.no_grad():
        logits = again(torch.from_numpy(samples["inputs"].copy()).permute(0, 3, 1, 2))
    assert np.abs(logits.numpy() - samples["logits"]).max() < 0.05 * np.abs(samples["logits"]).max()
    fewer = build_model("alexnet", 3, 67, two_tower=True, width=0.125)
    assert init_weights.init_from_package(fewer, out) == ["fc8"]  # another class count: a fresh head
    with pytest.raises(ValueError, match="the model wants"):
        init_weights.init_from_package(build_model("alexnet", 10, 67, width=0.25), out)
