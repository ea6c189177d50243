"""A package round-trips: read back, verified, and an independent NHWC forward reproduces its logits."""

import os

import numpy as np
import pytest
import torch
import torchvision

from conftest import ROOT, run_train
from nhwc_reference import forward as nhwc_forward
from training.data import FMNIST_LABELS, fmnist_preprocess
from training.model import build_model
from training.package import export_package, load_package
from training.quantize import fold_and_quantize


def export_small(tmp_path, arch="alexnet", size=99, two_tower=True, **kw):
    torch.manual_seed(0)
    model = build_model(arch, 10, size, two_tower=two_tower, width=0.25).eval()
    xs = torch.randn(3, 3, size, size)
    out = str(tmp_path / "pkg-v1")
    manifest = export_package(
        model,
        out,
        "pkg-v1",
        size,
        fmnist_preprocess(size),
        FMNIST_LABELS,
        xs,
        {"dataset": "none"},
        {"arch": arch},
        **kw,
    )
    return model, xs, out, manifest


def test_an_independent_nhwc_forward_of_the_package_reproduces_the_sample_logits(tmp_path):
    # 99x99 leaves a 2x2x64 feature map, so fc6's NHWC column order is really exercised.
    model, xs, out, manifest = export_small(tmp_path, onnx=False)
    manifest, weights, samples = load_package(out)
    assert manifest["layers"][-1] == {"op": "softmax"}
    assert manifest["quantization"]["convolutions"] == "int8"  # the default: our int8 kernels
    assert manifest["quantization"]["conv_activations"] == "7-bit-per-tensor-min-max"
    assert [layer.get("groups") for layer in manifest["layers"] if layer["op"] == "conv2d"] == [1, 2, 1, 2, 2]
    assert weights["conv2.weight"].shape == (5, 5, 12, 64) and weights["fc6.weight"].shape[1] == 64 * 2 * 2
    tol = manifest["samples"]["tolerance"]
    for i in range(len(xs)):
        ours = nhwc_forward(manifest, weights, samples["inputs"][i])
        ref = samples["logits"][i]
        # a tenth of the Worker's tolerance: other summation orders differ by ~1e-4, a layout bug by O(1)
        assert np.all(np.abs(ours - ref) <= 0.1 * (tol["abs"] + tol["rel"] * np.abs(ref).max()))
        assert ours.argmax() == ref.argmax()
    # the int8 model stays close to fp32 (dequantised weights, dynamic int16 activations)
    with torch.no_grad():
        fp32 = model(xs).numpy()
    assert np.abs(samples["logits"] - fp32).max() < 0.05 * np.abs(fp32).max()
    assert np.allclose(samples["logits_fp32"], fp32, atol=1e-5)


def test_a_package_can_ask_for_fp32_convolutions_and_its_samples_are_computed_so(tmp_path):
    _, xs, out, manifest = export_small(tmp_path, size=67, onnx=False, convolutions="fp32")
    assert manifest["quantization"]["convolutions"] == "fp32" and "conv_activations" not in manifest["quantization"]
    manifest, weights, samples = load_package(out)
    tol = manifest["samples"]["tolerance"]
    for i in range(len(xs)):
        ours = nhwc_forward(manifest, weights, samples["inputs"][i])  # fp32 convolutions, as the manifest says
        ref = samples["logits"][i]
        assert np.all(np.abs(ours - ref) <= 0.1 * (tol["abs"] + tol["rel"] * np.abs(ref).max()))


def test_dequantised_weights_reproduce_the_simulated_logits(tmp_path):
    model, xs, out, _ = export_small(tmp_path, onnx=False)
    _, weights, samples = load_package(out)
    layers = fold_and_quantize(model)
    for layer in layers:
        if layer["op"] in ("conv2d", "dense"):
            deq = (
                weights[layer["name"] + ".weight"].astype(np.float32)
                * weights[layer["name"] + ".scale"][
                    (None,) * (weights[layer["name"] + ".weight"].ndim - 1)
                    if layer["op"] == "conv2d"
                    else (slice(None), None)
                ]
            )
            ours = layer["deq"].permute(2, 3, 1, 0).numpy() if layer["op"] == "conv2d" else None
            if ours is not None:
                np.testing.assert_array_equal(deq, ours)
    assert samples["logits"].shape == (3, 10) and samples["inputs"].shape == (3, 99, 99, 3)


def test_the_manifest_records_exact_byte_lengths_and_hashes_and_a_tampered_file_is_refused(tmp_path):
    _, _, out, manifest = export_small(tmp_path, onnx=True)
    assert os.path.getsize(os.path.join(out, "weights.safetensors")) == manifest["weights"]["bytes"]
    assert sorted(os.listdir(out)) == ["manifest.json", "samples.safetensors", "weights.safetensors"]
    assert os.path.exists(out + ".onnx")  # the fp32 ONNX sits beside the package, not in it
    blob = bytearray(open(os.path.join(out, "weights.safetensors"), "rb").read())
    blob[-1] ^= 1
    open(os.path.join(out, "weights.safetensors"), "wb").write(bytes(blob))
    with pytest.raises(ValueError, match="SHA-256"):
        load_package(out)
    with pytest.raises(FileExistsError, match="immutable"):
        export_small(tmp_path, onnx=False)


def test_a_torchvision_alexnet_state_dict_converts_into_an_imagenet_package(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    out = tmp_path / "alexnet-tv-imagenet-v1"
    run_train(["--from-torchvision", str(path), "--export-dir", str(out), "--samples", "1", "--no-onnx"])
    manifest, weights, samples = load_package(str(out))
    assert len(manifest["labels"]) == 1000 and manifest["labels"][0] == "tench"
    assert manifest["input"] == {"height": 224, "width": 224, "channels": 3}
    assert manifest["preprocess"]["resize"]["shorter_side"] == 256 and manifest["preprocess"]["color"] == "rgb"
    assert [layer["filters"] for layer in manifest["layers"] if layer["op"] == "conv2d"] == [64, 192, 384, 256, 256]
    assert weights["fc6.weight"].shape == (4096, 9216) and weights["fc6.weight"].dtype == np.int8
    ours = nhwc_forward(manifest, weights, samples["inputs"][0])
    np.testing.assert_allclose(ours, samples["logits"][0], atol=1e-4 * np.abs(samples["logits"][0]).max() + 1e-5)


def test_the_committed_worker_fixtures_are_valid_small_packages():
    for name, color in (("tiny-package", "rgb"), ("tiny-gray-package", "gray")):
        out = os.path.join(ROOT, "test", "fixtures", name)
        manifest, weights, samples = load_package(out)
        assert manifest["id"] == name and manifest["preprocess"]["color"] == color
        ops = {layer["op"] for layer in manifest["layers"]}
        assert ops == {"conv2d", "lrn", "maxpool", "flatten", "dense", "softmax"}
        assert any(layer.get("groups") == 2 for layer in manifest["layers"])
        assert sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)) < 200_000
        for i in range(manifest["samples"]["count"]):
            ours = nhwc_forward(manifest, weights, samples["inputs"][i])
            assert np.abs(ours - samples["logits"][i]).max() < 1e-4
            top2 = np.sort(samples["logits"][i])[-2:]
            assert top2[1] - top2[0] > 0.2  # no near tie: top-1 is unambiguous for the Worker


def test_a_package_loaded_into_a_batch_norm_network_computes_what_the_package_computes(tmp_path):
    """--init PACKAGE --batch-norm: the package's BatchNorm was folded away at export; the BatchNorm put back
    must undo its own statistics, so a second training cycle starts from the package's function."""
    from training.init_weights import init_from_package, unfold_batch_norm

    torch.manual_seed(0)
    size = 67
    trained = build_model("alexnet", 10, size, width=0.25, dropout=0.0, batch_norm=True)
    images = torch.randn(96, 3, size, size)
    trained.train()
    with torch.no_grad():  # running statistics far from a fresh BatchNorm's 0 and 1, as after training
        for i in range(0, len(images), 32):
            trained(images[i : i + 32] * 3 + 1)
    out = str(tmp_path / "bn-v1")
    export_package(
        trained.eval(),
        out,
        "bn-v1",
        size,
        fmnist_preprocess(size),
        FMNIST_LABELS,
        images[:2],
        {"dataset": "none"},
        {"arch": "alexnet"},
        onnx=False,
    )
    plain = build_model("alexnet", 10, size, width=0.25, dropout=0.0)
    init_from_package(plain, out)
    again = build_model("alexnet", 10, size, width=0.25, dropout=0.0, batch_norm=True)
    init_from_package(again, out)
    assert unfold_batch_norm(again, images) == 7  # conv1-5, fc6, fc7
    with torch.no_grad():
        want = plain.eval()(images)
        got = again.eval()(images)
        assert torch.allclose(got, want, rtol=0, atol=1e-4 * want.abs().max().item())
        again.train()  # batch statistics of the same images: what the first training step sees
        first_step = again(images)
    assert ((first_step - want).norm() / want.norm()).item() < 1e-3
