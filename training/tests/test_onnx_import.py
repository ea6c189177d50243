"""ONNX AlexNets in, packages out: torchvision's layout and Caffe's (two towers, LRN), full size; refusals."""

import os
import subprocess
import sys

import onnx
import pytest
import torch
import torch.nn as nn
import torchvision

from conftest import ROOT, run_train
from onnx_sources import caffe_alexnet
from training.init_weights import choose_arch
from training.onnx_export import export_onnx
from training.onnx_import import OnnxImportError, read_onnx
from training.package import load_package
from training.quantize import fold_and_quantize


def test_torchvisions_own_alexnet_exported_by_torch_onnx_reads_back_to_the_same_logits(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.alexnet().eval()  # with its AdaptiveAvgPool2d, exported as a 1x1 AveragePool
    path = str(tmp_path / "tv.onnx")
    torch.onnx.export(
        source,
        torch.zeros(1, 3, 224, 224),
        path,
        opset_version=13,
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
    )
    model, size, softmax = read_onnx(path)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), source(x), rtol=0, atol=1e-5)
    assert (size, softmax) == (224, False)
    assert choose_arch(model, path) == {"arch": "alexnet-tv", "two_tower": False, "width": 1.0}


def test_a_full_size_caffe_layout_graph_converts_into_a_package_that_keeps_its_towers_and_lrn(tmp_path):
    source = caffe_alexnet(1.0, 227, 1000)
    path = str(tmp_path / "bvlc_alexnet.onnx")
    export_onnx(source, path, 227, softmax=True)
    nodes = onnx.load(path).graph.node
    groups = [a.i for n in nodes if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert groups == [1, 2, 1, 2, 2] and sum(n.op_type == "LRN" for n in nodes) == 2
    pkg = str(tmp_path / "bvlc-alexnet-v1")
    run_train(["--from-onnx", path, "--export-dir", pkg, "--samples", "2"])
    manifest, _, samples = load_package(pkg)
    assert manifest["input"] == {"height": 227, "width": 227, "channels": 3}
    assert len(manifest["labels"]) == 1000 and manifest["labels"][0] == "tench"
    assert manifest["training"]["arch"] == "alexnet" and manifest["training"]["two_tower"] is True
    convs = [layer for layer in manifest["layers"] if layer["op"] == "conv2d"]
    assert [c["groups"] for c in convs] == [1, 2, 1, 2, 2] and convs[0]["padding"] == 0
    # ONNX (like Caffe and PyTorch) divides alpha by the window; the manifest holds the paper's undivided alpha.
    assert [(layer["size"], layer["alpha"], layer["k"]) for layer in manifest["layers"] if layer["op"] == "lrn"] == [
        (5, 2e-5, 1.0)
    ] * 2
    x = torch.from_numpy(samples["inputs"].copy()).permute(0, 3, 1, 2)
    with torch.no_grad():
        want = source(x)
    got = torch.from_numpy(samples["logits_fp32"].copy())
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()  # fp32 sums in another order
    err = (torch.from_numpy(samples["logits"].copy()) - want).norm() / want.norm()
    assert err < 0.05, f"int8 logits are {err:.3f} (relative L2) from the source's"


def test_the_lrn_of_a_graph_made_from_the_paper_model_maps_back_to_the_papers_alpha(tmp_path):
    from training.model import AlexNet

    path = str(tmp_path / "paper.onnx")
    export_onnx(AlexNet(10, 67, width=0.0625), path, 67)
    model, _, _ = read_onnx(path)
    lrn = [layer for layer in fold_and_quantize(model) if layer["op"] == "lrn"]
    assert [(layer["alpha"], layer["k"]) for layer in lrn] == [(1e-4, 2.0)] * 2


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.sig = nn.Sigmoid()

    def forward(self, x):
        return self.sig(self.conv(x)).flatten(1)


def test_a_graph_outside_the_family_is_refused_naming_the_first_node_that_does_not_fit(tmp_path):
    path = str(tmp_path / "other.onnx")
    torch.onnx.export(_Residual().eval(), torch.zeros(1, 3, 8, 8), path, opset_version=13)
    with pytest.raises(OnnxImportError, match=r"\(Sigmoid\) does not fit the AlexNet family"):
        read_onnx(path)
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "train.py"),
            "--from-onnx",
            path,
            "--export-dir",
            str(tmp_path / "x-v1"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "(Sigmoid) does not fit the AlexNet family" in proc.stderr
    assert not os.path.exists(tmp_path / "x-v1")


def test_a_graph_whose_convolutions_are_no_alexnet_layout_gets_no_arch_and_says_why(tmp_path):
    model = caffe_alexnet(0.0625, 67, 10)
    model.features[4] = nn.Conv2d(6, 16, 5, padding=2)  # conv2 without the towers, conv4 and conv5 with them
    with pytest.raises(ValueError, match=r"cannot choose --arch: .*groups \[1, 1, 1, 2, 2\]"):
        choose_arch(model, "odd.onnx")
