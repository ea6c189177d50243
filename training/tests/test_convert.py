"""Conversion without training: a torchvision .pth or an ONNX graph becomes a package with its own labels."""

import numpy as np
import pytest
import torch

from conftest import train_config
from onnx_sources import caffe_alexnet, tv_alexnet
from training.convert import convert, read_labels
from training.onnx_export import export_onnx
from training.package import load_package


def test_labels_come_from_a_file_or_are_imagenets_and_must_match_the_last_layer(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("cat\n\ndog\nowl\n")
    assert read_labels(str(path), 3) == ["cat", "dog", "owl"]  # blank lines skipped
    assert len(read_labels("", 1000)) == 1000
    with pytest.raises(SystemExit, match="has 4 outputs but .* holds 3 labels$"):
        read_labels(str(path), 4)
    with pytest.raises(SystemExit, match="holds 1000 labels; pass --labels FILE"):
        read_labels("", 10)


def test_a_narrow_torchvision_pth_converts_with_sample_logits_of_its_own_weights(tmp_path):
    source = tv_alexnet(0.0625, 224, 3)
    pth = str(tmp_path / "tv.pth")
    torch.save(source.state_dict(), pth)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    cfg = train_config(labels=str(tmp_path / "labels.txt"), export_dir=str(tmp_path / "tv-v1"), samples=2, onnx=False)
    manifest = convert(cfg, pth, "torchvision")
    assert manifest == load_package(cfg["export_dir"])[0] and manifest["labels"] == ["a", "b", "c"]
    assert manifest["training"]["arch"] == "alexnet-tv" and manifest["training"]["width"] == 0.0625
    assert manifest["training"]["source"] == "torchvision AlexNet weights (converted, not trained here)"
    assert manifest["metrics"]["dataset"].startswith("not evaluated here")
    xs = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(cfg["seed"]))
    _, _, samples = load_package(cfg["export_dir"])
    assert np.array_equal(samples["inputs"], xs.permute(0, 2, 3, 1).numpy())
    with torch.no_grad():
        want = source(xs).numpy()
    assert np.abs(samples["logits_fp32"] - want).max() <= 1e-5 * np.abs(want).max()


def test_a_caffe_graph_converts_at_its_own_input_size_not_the_flags_with_caffes_preprocessing(tmp_path):
    graph = str(tmp_path / "bvlc.onnx")
    export_onnx(caffe_alexnet(0.0625, 67, 1000), graph, 67)
    cfg = train_config(export_dir=str(tmp_path / "bvlc-v1"), source_input="caffe", samples=1)
    manifest = convert(cfg, graph, "onnx")
    assert manifest["input"]["height"] == 67 != cfg["input_size"] and manifest["training"]["two_tower"] is True
    assert manifest["preprocess"]["std"] == [1 / 255] * 3  # Caffe's 0-255 pixels minus the mean
    assert not (tmp_path / "bvlc-v1.onnx").exists()  # an ONNX source is not written back as ONNX
