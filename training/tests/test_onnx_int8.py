"""ONNX export of int8 packages (training/onnx_int8.py), run by onnxruntime-node: the Worker's logits back.

Python has no onnxruntime here (no PyPI); the graphs run on onnxruntime-node from bench/peers (npm run
bench:peers:install) through scripts/run-onnx.mjs. Without it these tests skip, and fail under CI=true.

Bound: relative L2 distance from the Worker's logits <= 1e-3 (a tenth of the float reference's 1%). The export
computes the Worker's codes and sums, so what remains is fp32 rounding of the epilogue and of LRN's pow, which
may move a code by one step now and then: measured 1e-7 .. 3e-5 on the packages below (docs/onnx-export.md).
"""

import json
import os
import shutil
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from conftest import ROOT, needs_fmnist, require
from training.onnx_int8 import package_to_onnx
from training.package import load_package
from training.quantize import served_forward

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from export_onnx import relative_l2, run_onnx  # noqa: E402
from onnx_top1 import fmnist_inputs  # noqa: E402

BOUND = 1e-3
DEFAULT = "model/alexnet-fmnist-64-v8"
PACKAGES = [
    "test/fixtures/tiny-package",
    "test/fixtures/tiny-gray-package",
    "test/fixtures/imported/finetune-onnx",
    "test/fixtures/imported/finetune-pth",
    "test/fixtures/imported/onnx-caffe",
    "test/fixtures/imported/onnx-tv",
    DEFAULT,
]


def needs_onnxruntime():
    installed = os.path.isdir(os.path.join(ROOT, "bench/peers/node_modules/onnxruntime-node"))
    require(
        installed and shutil.which("node") is not None,
        "onnxruntime-node is not installed (npm run bench:peers:install)",
    )


def export(tmp_path, package: str, **kwargs) -> tuple:
    manifest, weights, samples = load_package(os.path.join(ROOT, package))
    path = str(tmp_path / "model.onnx")
    onnx.save(package_to_onnx(manifest, weights, **kwargs), path)
    return path, manifest, weights, samples


@pytest.mark.parametrize("form", ["cast", "integer"])
@pytest.mark.parametrize("package", PACKAGES)
def test_onnxruntime_gives_the_workers_sample_logits(tmp_path, package, form):
    needs_onnxruntime()
    path, manifest, _, samples = export(tmp_path, package, form=form)
    got, want = run_onnx(path, samples["inputs"]), samples["logits"]
    err = relative_l2(got, want)
    print(f"{package} ({form}): relative L2 {err:.2e} over {len(want)} samples")
    assert err <= BOUND
    assert (got.argmax(1) == want.argmax(1)).all()
    tol = manifest["samples"]["tolerance"]  # the Worker's own parity test, elementwise
    assert (np.abs(got - want) <= tol["abs"] + tol["rel"] * np.abs(want).max(1, keepdims=True)).all()


def test_initializers_are_the_packages_int8_weights_and_scales(tmp_path):
    path, manifest, weights, _ = export(tmp_path, "test/fixtures/tiny-package")
    model = onnx.load(path)
    assert [o.version for o in model.opset_import] == [13]
    inits = {t.name: t for t in model.graph.initializer}
    for layer in (layer for layer in manifest["layers"] if layer["op"] in ("conv2d", "dense")):
        name = layer["name"]
        w = inits[name + ".weight"]
        assert w.data_type == TensorProto.INT8
        q = onnx.numpy_helper.to_array(w)
        want = weights[name + ".weight"]
        if layer["op"] == "conv2d":
            np.testing.assert_array_equal(q, want.transpose(3, 2, 0, 1))  # HWIO -> OIHW, values untouched
        else:
            np.testing.assert_array_equal(q, want.T)  # [units, in] -> [in, units]
        scale = onnx.numpy_helper.to_array(inits[name + ".scale"]).reshape(-1)
        np.testing.assert_array_equal(scale, weights[name + ".scale"])
    assert not [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT and t.name.endswith(".weight")]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 32, 32, 3]  # NHWC, as the Worker and the samples take it
    assert [o.name for o in model.graph.output] == ["logits", "probs"]


def test_nchw_layout_and_batching_change_nothing(tmp_path):
    needs_onnxruntime()
    path, _, _, samples = export(tmp_path, "test/fixtures/tiny-package")
    together = run_onnx(path, samples["inputs"], batch=64)
    alone = run_onnx(path, samples["inputs"], batch=1)  # codes are per example, not per batch
    np.testing.assert_array_equal(together, alone)
    nchw, _, _, _ = export(tmp_path / "..", "test/fixtures/tiny-package", layout="nchw")
    np.testing.assert_array_equal(run_onnx(nchw, samples["inputs"].transpose(0, 3, 1, 2)), together)
    probs = run_onnx(path, samples["inputs"], output="probs")
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(together), 1).numpy(), rtol=1e-5, atol=1e-7)


def package_layers(manifest: dict, weights: dict) -> list:
    """The package's layers as training/quantize.py holds them (PyTorch layout), for served_forward."""
    layers, channels, first = [], 3, True
    for layer in manifest["layers"]:
        layer = dict(layer)
        if layer["op"] in ("conv2d", "dense"):
            q = torch.from_numpy(weights[layer["name"] + ".weight"].astype(np.int8))
            if layer["op"] == "conv2d":
                q, channels = q.permute(3, 2, 0, 1), layer["filters"]  # HWIO -> OIHW
            elif first:  # NHWC columns -> CHW, served_forward flattens NCHW
                side = int(round((q.shape[1] // channels) ** 0.5))
                q = q.reshape(q.shape[0], side, side, channels).permute(0, 3, 1, 2).reshape(q.shape[0], -1)
                first = False
            layer["q"] = q.contiguous()
            layer["scale"] = torch.from_numpy(weights[layer["name"] + ".scale"].copy())
            layer["bias"] = torch.from_numpy(weights[layer["name"] + ".bias"].copy())
        layers.append(layer)
    return layers


def test_a_few_hundred_test_images_get_the_workers_answers(tmp_path):
    """300 Fashion-MNIST test images through the default model's ONNX: the served arithmetic's logits (PyTorch's
    model of it, training/quantize.py) to the same bound and the same top-1 on every image. (The whole test set
    against metrics.top1_int8: scripts/onnx_top1.py, run by hand; docs/onnx-export.md has the figure.)"""
    needs_onnxruntime()
    needs_fmnist()
    from training.data import FMNIST_DIR, load_fmnist

    path, manifest, weights, samples = export(tmp_path, DEFAULT)
    images, labels = load_fmnist(FMNIST_DIR, "test")
    x = fmnist_inputs(manifest, images[:300])
    got = run_onnx(path, x)
    layers = package_layers(manifest, weights)
    quant = manifest["quantization"]
    want = served_forward(
        layers, torch.from_numpy(x).permute(0, 3, 1, 2), conv_activations=quant["conv_activations"]
    ).numpy()
    err = relative_l2(got, want)
    agree = int((got.argmax(1) == want.argmax(1)).sum())
    top1 = float((got.argmax(1) == labels[:300]).mean())
    print(json.dumps({"relative_l2": err, "same_top1": agree, "top1_300": top1}))
    assert err <= BOUND
    assert agree == 300
    # the reference's own check: PyTorch's model of the served arithmetic gives the package's sample logits
    sample_logits = served_forward(layers, torch.from_numpy(samples["inputs"].copy()).permute(0, 3, 1, 2))
    assert relative_l2(sample_logits.numpy(), samples["logits"]) <= 1e-5
