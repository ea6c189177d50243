"""The network a run starts from: fresh, another cycle of a checkpoint or a package, or fine-tuned from a .pth."""

import pytest
import torch

from conftest import train_config
from onnx_sources import tv_alexnet
from training import lineage
from training.checkpoint import KEYS, save_checkpoint
from training.data import FMNIST_LABELS, fmnist_preprocess
from training.package import export_package
from training.warm_start import checkpoint_structure, start_model

SMALL = {"arch": "alexnet", "input_size": 64, "width": 0.0625, "dropout": 0.0}


def images(n=8, size=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(3, size, size, generator=gen), i % 10) for i in range(n)]


def test_without_init_the_flags_network_starts_fresh():
    start = start_model(train_config(**SMALL), 10, images())
    assert start.fresh == [] and start.structure == {} and start.continues is None and start.history == []
    assert start.model.classifier[-1].out_features == 10 and start.summary == ""


def write_checkpoint(path, cfg, model, history):
    state = {k: None for k in KEYS}
    state.update(model=model.state_dict(), epoch=len(history), config=cfg, history=history, rng=[])
    save_checkpoint(path, **state)


def test_a_checkpoint_is_continued_with_its_own_structure_weights_and_history(tmp_path):
    first = train_config(**SMALL, batch_norm=True, lr=0.05)
    trained = start_model(first, 10, images()).model
    with torch.no_grad():
        trained.features[1].running_mean.fill_(0.25)  # a BatchNorm statistic: carried over as well
    path = str(tmp_path / "ckpt.pt")
    write_checkpoint(path, first, trained, [{"epoch": 1, "test_top1": 0.5}])
    # the command line leaves input size and BatchNorm at their defaults: the checkpoint decides them
    cfg = train_config(init=path, lr=0.01, width=0.0625)
    structure = checkpoint_structure(cfg)
    assert structure == {k: first[k] for k in lineage.STRUCTURE}
    cfg.update(structure)
    start = start_model(cfg, 10, images())
    for key, value in trained.state_dict().items():
        assert torch.equal(start.model.state_dict()[key], value), key
    assert start.history == [{"epoch": 1, "test_top1": 0.5}] and start.fresh == []
    assert start.continues["checkpoint"] == path and start.continues["recipe"]["lr"] == 0.05
    assert start.summary.startswith(f"continuing {path} after its 1 epochs (test top-1 0.5000): arch=alexnet")
    with pytest.raises(SystemExit, match="does not fit 3 classes"):
        start_model(cfg, 3, images())


def export_small(tmp_path, name="small-v1", batch_norm=False):
    model = start_model(train_config(**SMALL, batch_norm=batch_norm), 10, images()).model.eval()
    xs = torch.stack([x for x, _ in images(2)])
    training = {"epochs": 4, "wall_seconds": 8.0, "recipe": {"lr": 0.05}}
    export_package(
        model, str(tmp_path / name), name, 64, fmnist_preprocess(64), FMNIST_LABELS, xs, {}, training, onnx=False
    )
    return model, str(tmp_path / name)


def test_a_package_on_its_own_classes_is_another_cycle_and_on_others_gets_a_new_head(tmp_path):
    _, package = export_small(tmp_path)
    same = start_model(train_config(**SMALL, init=package), 10, images())
    assert same.fresh == [] and same.continues["package"] == "small-v1" and same.continues["epochs"] == 4
    assert "loaded every layer; new: none" in same.summary
    other = start_model(train_config(**SMALL, init=package), 3, images())
    assert other.fresh == ["classifier.6"] and other.continues is None
    assert "loaded every layer but the last; new: classifier.6" in other.summary


def test_a_package_into_a_batch_norm_network_starts_from_the_packages_function(tmp_path):
    model, package = export_small(tmp_path, batch_norm=True)
    train_ds = images(32)
    start = start_model(train_config(**SMALL, init=package, batch_norm=True), 10, train_ds)
    assert "7 BatchNorm layers set to undo their statistics on 32 training images" in start.summary
    x = torch.stack([x for x, _ in train_ds[:4]])
    with torch.no_grad():
        want, got = model.eval()(x), start.model.eval()(x)
    assert (got - want).norm() / want.norm() < 0.05  # the int8 weights of the package, nothing else changed


def test_a_torchvision_pth_sets_the_architecture_and_fine_tunes_with_a_new_last_layer(tmp_path):
    pth = str(tmp_path / "alexnet.pth")
    torch.save(tv_alexnet(0.0625, 224, 1000).state_dict(), pth)
    start = start_model(train_config(init=pth, input_size=64), 3, images())
    assert start.structure == {"arch": "alexnet-tv", "two_tower": False, "width": 0.0625}
    assert start.fresh == ["classifier.1", "classifier.6"]  # fc6 follows the smaller feature map: new as well
    assert start.summary.startswith(f"initialised from {pth}: --arch alexnet-tv --width 0.0625; loaded features.0")
    assert start.model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


def test_an_init_path_that_is_nothing_usable_exits_with_its_message(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        start_model(train_config(init=str(tmp_path / "missing.pth")), 10, images())
    with pytest.raises(SystemExit, match="must be a model package"):
        checkpoint_structure(train_config(init=str(tmp_path)))
