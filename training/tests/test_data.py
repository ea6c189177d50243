"""The IDX reader, Fashion-MNIST preprocessing, and the image-folder dataset's errors and skips."""

import gzip
import os
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import FMNIST_DIR, needs_fmnist, train_config
from training import data as D


def write_idx(path, arr, code):
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if path.endswith(".gz") else open)(path, "wb") as f:
        f.write(body)


def test_idx_reader_reads_gzipped_and_plain_files_of_several_types(tmp_path):
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(str(tmp_path / "a.gz"), imgs, 0x08)
    assert np.array_equal(D.read_idx(str(tmp_path / "a.gz")), imgs)
    ints = np.array([-5, 70000, 3], dtype=np.int32)
    write_idx(str(tmp_path / "b"), ints, 0x0C)
    assert D.read_idx(str(tmp_path / "b")).tolist() == [-5, 70000, 3]


def test_idx_reader_rejects_a_file_that_is_not_idx_or_is_truncated(tmp_path):
    (tmp_path / "x").write_bytes(b"\x89PNG....")
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(str(tmp_path / "x"))
    write_idx(str(tmp_path / "t"), np.zeros((4, 4), np.uint8), 0x08)
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-3])
    with pytest.raises(ValueError, match="holds"):
        D.read_idx(str(tmp_path / "t"))


def test_fashion_mnist_loads_60k_and_10k_images_with_labels():
    needs_fmnist()
    x, y = D.load_fmnist(FMNIST_DIR, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert sorted(set(y.tolist())) == list(range(10))


def test_a_missing_fashion_mnist_names_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        D.load_fmnist(str(tmp_path), "train")


def test_fashion_mnist_evaluation_input_is_exactly_the_manifest_preprocess():
    needs_fmnist()
    ds = D.FashionMNIST(FMNIST_DIR, "test", 64, train=False, subset=3)
    x, _ = ds[2]
    pre = D.fmnist_preprocess(64)
    raw = torch.from_numpy(D.load_fmnist(FMNIST_DIR, "test")[0][2].astype(np.float32))
    resized = F.interpolate(raw[None, None], size=(64, 64), mode="bilinear", align_corners=False, antialias=True)[0, 0]
    expect = (resized / pre["scale"] - pre["mean"][0]) / pre["std"][0]
    assert pre["color"] == "gray" and pre["resize"]["shorter_side"] == 64 and pre["crop"]["height"] == 64
    assert x.shape == (3, 64, 64)
    for c in range(3):  # the same operations in the same order: bit for bit
        assert torch.equal(x[c], expect)


def make_folder(root, classes):
    for split in ("train", "val"):
        for c, n in classes.items():
            os.makedirs(root / split / c, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((40, 50, 3), 40 * i, np.uint8)).save(root / split / c / f"{i}.jpg")


def test_image_folder_skips_and_counts_unreadable_images(tmp_path):
    make_folder(tmp_path, {"cat": 2, "dog": 3})
    (tmp_path / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = D.ImageFolder(str(tmp_path), "train", 32, train=True)
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    x, y, skipped = D.collate_skip([ds[i] for i in range(len(ds))])
    assert x.shape == (5, 3, 32, 32) and skipped == 1 and y.tolist() == [0, 0, 1, 1, 1]


def test_image_folder_errors_name_the_missing_dataset_and_the_empty_class(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        D.ImageFolder(str(tmp_path / "nope"), "train", 32, train=True)
    make_folder(tmp_path, {"cat": 1, "dog": 0})
    with pytest.raises(ValueError, match="dog holds no images"):
        D.ImageFolder(str(tmp_path), "train", 32, train=True)


def test_ten_crop_evaluation_gives_ten_views_per_image(tmp_path):
    make_folder(tmp_path, {"cat": 1})
    x, _ = D.ImageFolder(str(tmp_path), "val", 32, train=False, ten_crop=True)[0]
    assert x.shape == (10, 3, 32, 32)


def test_image_folder_sees_a_photo_the_right_way_up_as_the_worker_does(tmp_path):
    make_folder(tmp_path, {"cat": 1})
    path = tmp_path / "train" / "cat" / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation 6: stored 90 degrees counter-clockwise, shown rotated back
    Image.new("RGB", (40, 20), (200, 30, 30)).save(path, exif=exif)
    ds = D.ImageFolder(str(tmp_path), "train", 32, train=False)
    assert ds.load_rgb(str(path)).size == (20, 40)  # width and height as a person sees the photo


def test_make_datasets_gives_an_image_folders_splits_subsets_labels_and_preprocess(tmp_path):
    make_folder(tmp_path, {"cat": 3, "dog": 2})
    cfg = train_config(dataset=str(tmp_path), input_size=32, train_subset=4, test_subset=1)
    train, test, labels, preprocess = D.make_datasets(cfg)
    assert labels == ["cat", "dog"] and (len(train), len(test)) == (4, 1)
    assert preprocess == D.folder_preprocess(32) and test[0][0].shape == (3, 32, 32)
    caffe = D.make_datasets(dict(cfg, source_input="caffe", init="bvlc.onnx"))[3]
    assert caffe["mean"] == list(D.CAFFE_MEAN) and caffe["std"] == list(D.CAFFE_STD)


def test_input_statistics_are_caffes_only_for_a_caffe_file_source(tmp_path):
    assert D.input_stats("caffe", "bvlc.onnx") == (D.CAFFE_MEAN, D.CAFFE_STD)
    assert D.input_stats("caffe", str(tmp_path)) == (D.IMAGENET_MEAN, D.IMAGENET_STD)  # a package: its own
    assert D.input_stats("torchvision", "alexnet.pth") == (D.IMAGENET_MEAN, D.IMAGENET_STD)


def test_make_datasets_gives_fashion_mnist_at_the_input_size():
    needs_fmnist()
    train, test, labels, preprocess = D.make_datasets(train_config(input_size=64, train_subset=10, test_subset=5))
    assert (len(train), len(test), labels) == (10, 5, D.FMNIST_LABELS) and preprocess == D.fmnist_preprocess(64)
