"""Each architecture builds, gives one logit per class, and has the paper's parameter count."""

import pytest
import torch
import torchvision

from training.model import build_model, count_parameters, feature_shape


@pytest.mark.parametrize(
    "arch,two_tower,params",
    [
        ("alexnet", False, 62_378_344),  # the paper's net as one tower: ~62 M
        ("alexnet", True, 60_965_224),  # with the two-tower grouping of conv2, conv4, conv5: ~61 M
        ("alexnet-tv", False, 61_100_840),  # exactly torchvision's AlexNet
        ("alexnet-bn", False, 28_056_616),  # valid padding leaves a 256x1x1 map at 224, so fc6 is small
    ],
)
def test_every_architecture_gives_1000_logits_at_224_with_the_paper_parameter_count(arch, two_tower, params):
    model = build_model(arch, 1000, 224, two_tower).eval()
    assert count_parameters(model) == params
    with torch.no_grad():
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 1000)


def test_alexnet_tv_matches_torchvision_parameter_for_parameter():
    ours = build_model("alexnet-tv", 1000, 224)
    tv = torchvision.models.alexnet()
    ours.load_state_dict(tv.state_dict())  # same keys and shapes
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), tv.eval()(x), atol=1e-5)


def test_the_first_dense_layer_follows_the_feature_map_of_a_smaller_input():
    model = build_model("alexnet", 10, 64)
    assert feature_shape(model.features, 64) == (256, 1, 1)
    assert model.classifier[1].in_features == 256
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert build_model("alexnet", 10, 227).classifier[1].in_features == 256 * 6 * 6


def test_a_too_small_input_and_a_bad_option_are_clear_errors():
    with pytest.raises(ValueError, match="too small"):
        build_model("alexnet-bn", 10, 64)
    with pytest.raises(ValueError, match="two-tower"):
        build_model("alexnet-tv", 10, 224, two_tower=True)
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("vgg", 10, 224)
