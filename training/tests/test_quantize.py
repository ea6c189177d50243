"""BN folding holds to float rounding, quantization follows the doc, the simulated dense and conv layers are the
Worker's."""

import numpy as np
import torch
import torch.nn as nn

from nhwc_reference import conv2d_int8 as numpy_conv
from nhwc_reference import dense_int8 as numpy_dense
from training.model import build_model
from training.quantize import (
    MIN_MAX,
    SYMMETRIC,
    conv_int8,
    dense_int8,
    fold_and_quantize,
    quantize_rows,
    served_forward,
)


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.1)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.3)


def test_batch_norm_folds_into_the_preceding_layers_to_float_rounding():
    gen = torch.Generator().manual_seed(0)
    model = build_model("alexnet-bn", 10, 227, width=0.25)
    randomise_bn(model, gen)
    model.eval()
    layers = fold_and_quantize(model)
    assert not any(layer["op"] == "batchnorm" for layer in layers)
    ops = [layer["op"] for layer in layers]
    assert ops.count("conv2d") == 5 and ops.count("dense") == 3
    x = torch.randn(3, 3, 227, 227, generator=gen)
    with torch.no_grad():
        ref = model(x)
    folded = served_forward(layers, x, quantized=False)
    assert (folded - ref).abs().max().item() <= 1e-5 * max(1.0, ref.abs().max().item())


def test_paper_alexnet_trained_with_batch_norm_exports_the_paper_layers_with_the_same_outputs():
    gen = torch.Generator().manual_seed(1)
    model = build_model("alexnet", 10, 64, width=0.25, batch_norm=True)
    plain = build_model("alexnet", 10, 64, width=0.25)
    randomise_bn(model, gen)
    model.eval()
    layers = fold_and_quantize(model)

    def strip(ls):
        return [{k: v for k, v in layer.items() if not isinstance(v, torch.Tensor)} for layer in ls]

    assert strip(layers) == strip(fold_and_quantize(plain))  # the same served layers as the paper's AlexNet
    x = torch.randn(3, 3, 64, 64, generator=gen)
    with torch.no_grad():
        ref = model(x)
    folded = served_forward(layers, x, quantized=False)
    assert (folded - ref).abs().max().item() <= 1e-5 * max(1.0, ref.abs().max().item())


def test_weights_quantize_per_output_channel_with_an_all_zero_row_scaled_by_one():
    w = torch.tensor([[0.5, -1.27, 0.0], [0.0, 0.0, 0.0], [2.0, 1.0, -0.01]])
    q, scale = quantize_rows(w)
    assert q.dtype == torch.int8
    assert torch.allclose(scale, torch.tensor([1.27 / 127, 1.0, 2.0 / 127]))
    assert q[0].tolist() == [50, -127, 0] and q[1].tolist() == [0, 0, 0] and q[2].tolist() == [127, 64, -1]


def test_the_simulated_dense_layer_matches_the_documented_integer_arithmetic():
    gen = torch.Generator().manual_seed(1)
    x = torch.relu(torch.randn(5, 9216, generator=gen))
    x[3] = 0  # an all-zero row outputs the bias
    q = torch.randint(-127, 128, (64, 9216), generator=gen, dtype=torch.int8)
    scale, bias = torch.rand(64, generator=gen) * 0.01, torch.randn(64, generator=gen)
    ours = dense_int8(x, q, scale, bias)
    for i in range(5):
        ref = numpy_dense(x[i].numpy(), q.numpy(), scale.numpy(), bias.numpy())
        np.testing.assert_allclose(ours[i].numpy(), ref, rtol=1e-6, atol=1e-6)
    assert torch.equal(ours[3], bias)
    unrounded = x @ (q.float() * scale[:, None]).t() + bias
    assert (ours - unrounded).abs().max() < 1e-3 * unrounded.abs().max()  # int16 activations: ~1e-4 relative


def test_the_simulated_convolution_codes_its_input_as_documented_bit_for_bit():
    """conv_int8 (torch, NCHW) against the numpy reference written from the doc (NHWC), under both rules for
    a signed input: lopsided like a normalized image, one all-zero example, one all-negative."""
    gen = torch.Generator().manual_seed(2)
    layer = {
        "q": torch.randint(-127, 128, (8, 3, 5, 5), generator=gen, dtype=torch.int8),
        "scale": torch.rand(8, generator=gen) * 0.01,
        "bias": torch.randn(8, generator=gen),
        "stride": 2,
        "padding": 2,
        "groups": 1,
    }
    x = torch.rand(4, 3, 17, 17, generator=gen) * 2.83 - 0.81
    x[2] = 0
    x[3] = -torch.rand(3, 17, 17, generator=gen)
    hwio = layer["q"].permute(2, 3, 1, 0).numpy()
    for rule in (MIN_MAX, SYMMETRIC):
        ours = conv_int8(x, layer, rule).permute(0, 2, 3, 1).numpy()
        for i in range(len(x)):
            ref = numpy_conv(
                x[i].permute(1, 2, 0).numpy(), hwio, layer["scale"].numpy(), layer["bias"].numpy(), 2, 2, 1, rule
            )
            assert np.array_equal(ours[i], ref), (rule, i)
        assert np.array_equal(ours[2], np.broadcast_to(layer["bias"].numpy(), ours[2].shape))
    # min-max spends the codes on the range that occurs: closer to the float convolution than symmetric
    unrounded = torch.nn.functional.conv2d(
        x, layer["q"].float() * layer["scale"].view(-1, 1, 1, 1), layer["bias"], stride=2, padding=2
    )
    err = {rule: (conv_int8(x[:2], layer, rule) - unrounded[:2]).norm().item() for rule in (MIN_MAX, SYMMETRIC)}
    assert err[MIN_MAX] < 0.8 * err[SYMMETRIC], err
