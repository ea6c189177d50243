"""From a trained model to the Worker's layers: BN folding, int8 quantization, and the served arithmetic.

`fold_and_quantize(model)` walks `model.features`, a flatten, then `model.classifier` and returns the layer
list of docs/model-package.md with tensors still in PyTorch layout (OIHW convolutions, [out, in] dense with
fc6's columns in CHW order); `served_forward(layers, x)` runs them exactly as the Worker does (int8
convolutions with 7-bit dynamic min-max activations, int8 dense with int16 dynamic activations, see "The served
arithmetic"). The exporter (package.py) only re-lays them out.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

INT32_MAX = 2**31 - 1
# How the int8 convolutions code a signed input (the manifest's quantization.conv_activations; codes stay in
# 0..127, where WebAssembly's relaxed int8 dot product is defined on every CPU): over the tensor's min..max
# with a zero point (what the exporter writes), or -63..63 around 64 (packages written before). A post-ReLU
# input takes [0, max] in all 128 codes under either.
MIN_MAX = "7-bit-per-tensor-min-max"
SYMMETRIC = "7-bit-per-tensor-dynamic"
CONV_ACTIVATIONS = MIN_MAX


def fold_bn(weight: torch.Tensor, bias, bn) -> tuple:
    """Fold an eval-mode BatchNorm that follows a conv/linear into its weight and bias (exact algebra)."""
    inv = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    w = weight.double() * inv.view(-1, *([1] * (weight.dim() - 1)))
    b = bias.double() if bias is not None else torch.zeros_like(inv)
    b = (b - bn.running_mean.double()) * inv + bn.bias.detach().double()
    return w.float(), b.float()


def quantize_rows(w: torch.Tensor) -> tuple:
    """Symmetric per-output-channel int8: scale = max|row| / 127 (1.0 for an all-zero row), q = round(w / scale)."""
    flat = w.detach().float().reshape(w.shape[0], -1)
    scale = flat.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(flat / scale[:, None]), -127, 127).to(torch.int8)
    return q.reshape(w.shape), scale


def _add_weights(layer: dict, w: torch.Tensor, b) -> dict:
    b = torch.zeros(w.shape[0]) if b is None else b
    q, scale = quantize_rows(w)
    layer.update(
        q=q,
        scale=scale.float(),
        bias=b.detach().float().clone(),
        w=w.detach().float().clone(),
        deq=(q.float() * scale.view(-1, *([1] * (w.dim() - 1)))),
    )
    return layer


def _walk(modules, kind_prefix: str, counter: list, layers: list) -> None:
    """Append the layers of a Sequential; BN folds into the previous linear layer, ReLU becomes its activation."""
    mods = list(modules)
    for i, m in enumerate(mods):
        last = layers[-1] if layers else None
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            counter[0] += 1
            w = m.weight.detach().float()
            b = m.bias.detach().float() if m.bias is not None else None
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if isinstance(nxt, (nn.BatchNorm1d, nn.BatchNorm2d)):
                w, b = fold_bn(w, b, nxt)
            if isinstance(m, nn.Conv2d):
                for attr in ("kernel_size", "stride", "padding", "dilation"):
                    v = getattr(m, attr)
                    if isinstance(v, str) or len(set(v)) != 1:
                        raise ValueError(f"{m}: only square kernels, strides and paddings can be exported")
                if m.dilation[0] != 1 or m.padding_mode != "zeros":
                    raise ValueError(f"{m}: dilation and non-zero padding modes cannot be exported")
                layer = {
                    "op": "conv2d",
                    "name": f"conv{counter[0]}",
                    "filters": m.out_channels,
                    "kernel": m.kernel_size[0],
                    "stride": m.stride[0],
                    "padding": m.padding[0],
                    "groups": m.groups,
                    "activation": "none",
                }
            else:
                layer = {"op": "dense", "name": f"fc{counter[0]}", "units": m.out_features, "activation": "none"}
            layers.append(_add_weights(layer, w, b))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not (isinstance(mods[i - 1], (nn.Conv2d, nn.Linear)) if i else False):
                raise ValueError("a BatchNorm must directly follow a conv or linear layer to be folded")
        elif isinstance(m, nn.ReLU):
            if last is None or last["op"] not in ("conv2d", "dense") or last["activation"] != "none":
                raise ValueError("a ReLU must directly follow a conv or linear layer (after its BatchNorm)")
            last["activation"] = "relu"
        elif isinstance(m, nn.LocalResponseNorm):
            # PyTorch divides alpha by size; the manifest holds the paper's alpha.
            layers.append(
                {"op": "lrn", "size": m.size, "alpha": float(f"{m.alpha / m.size:.12g}"), "beta": m.beta, "k": m.k}
            )
        elif isinstance(m, nn.MaxPool2d):
            k, s = m.kernel_size, m.stride
            k = k if isinstance(k, int) else k[0]
            s = s if isinstance(s, int) else s[0]
            if m.padding not in (0, (0, 0)) or m.ceil_mode or m.dilation not in (1, (1, 1)):
                raise ValueError(f"{m}: only unpadded, floor-mode max pools can be exported")
            layers.append({"op": "maxpool", "window": k, "stride": s})
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        else:
            raise ValueError(f"cannot export layer {m} ({kind_prefix})")


def fold_and_quantize(model: nn.Module) -> list:
    """The served layer list of a model with `features` and `classifier`, tensors in PyTorch layout."""
    model = model.eval()
    layers, counter = [], [0]
    _walk(model.features, "features", counter, layers)
    convs = [layer for layer in layers if layer["op"] == "conv2d"]
    channels = convs[-1]["filters"] if convs else 3
    first = next(m for m in model.classifier if isinstance(m, nn.Linear))
    hw = first.in_features // channels
    side = math.isqrt(hw)
    if side * side * channels != first.in_features:
        raise ValueError(f"fc in_features {first.in_features} is not {channels} x a square feature map")
    layers.append({"op": "flatten", "chw": (channels, side, side)})
    _walk(model.classifier, "classifier", counter, layers)
    if layers[-1]["op"] != "dense":
        raise ValueError("the classifier must end with a linear layer")
    layers.append({"op": "softmax"})
    return layers


def dense_int8(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The Worker's dense layer (docs/model-package.md): int16 dynamic per-row activations, exact int32 sums.

    The int32 accumulation is done in float64, which is exact: |acc| <= Q * 127 * K < 2^31 < 2^53.
    """
    x = x.float()
    k = x.shape[1]
    qmax = min(32767, INT32_MAX // (127 * k))
    m = x.abs().amax(dim=1, keepdim=True)  # fp32
    safe_m = torch.where(m > 0, m, torch.ones_like(m))
    inv = torch.tensor(float(qmax), dtype=torch.float32) / safe_m  # fp32 division, as the Worker
    xq = torch.clamp(torch.round(x * inv), -qmax, qmax)  # round half to even
    acc = xq.double() @ q.double().t()  # exact int32 values
    y = acc.float() * ((m / float(qmax)) * scale[None, :]) + bias[None, :]
    return torch.where(m > 0, y, bias[None, :].expand_as(y))


def input_code(x: torch.Tensor, rule: str) -> tuple:
    """(inv, step, lo, hi) per example, all fp32 [N, 1, 1, 1]: the code q = clamp(round(x * inv), lo, hi)
    (the zero point -lo cancels in the sums, so q is kept centred here) stands for q * step.

    MIN_MAX: r = max(x, 0) - min(x, 0), inv = 127 / r, zp = round(-min(x, 0) * inv), q in -zp..127 - zp,
    step = r / 127; SYMMETRIC: m = max|x|, inv = 63 / m, q in -63..63, step = m / 63. Each in fp32, as
    src/engine/input-code.ts computes it.
    """
    dims = (1, 2, 3)
    if rule == SYMMETRIC:
        r, top = x.abs().amax(dim=dims, keepdim=True), 63.0
        lo = torch.full_like(r, -63.0)
        hi = torch.full_like(r, 63.0)
    elif rule == MIN_MAX:
        low = torch.clamp(x.amin(dim=dims, keepdim=True), max=0.0)
        r, top = torch.clamp(x.amax(dim=dims, keepdim=True), min=0.0) - low, 127.0  # fp32 subtraction
    else:
        raise ValueError(f"conv_activations must be {MIN_MAX!r} or {SYMMETRIC!r}, not {rule!r}")
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    inv = torch.where(r > 0, torch.tensor(top, dtype=torch.float32) / safe_r, torch.zeros_like(r))
    if rule == MIN_MAX:
        zp = torch.clamp(torch.round(-low * inv), 0.0, 127.0)  # 0 is a code exactly
        lo, hi = -zp, 127.0 - zp
    return inv, r / top, lo, hi


def conv_int8(x: torch.Tensor, layer: dict, rule: str) -> torch.Tensor:
    """The Worker's int8 convolution (docs/model-package.md): per example, 7-bit codes of x (`input_code`),
    exact int32 sums of q * w (done in float64, exact: |acc| < 2^31 < 2^53; zero padding is q = 0, the
    zero point cancels), y = f32(acc) * (step * scale) + bias, each step in fp32.
    """
    x = x.float()
    inv, step, lo, hi = input_code(x, rule)
    xq = torch.maximum(torch.minimum(torch.round(x * inv), hi), lo)  # round half to even
    acc = F.conv2d(
        xq.double(), layer["q"].double(), None, stride=layer["stride"], padding=layer["padding"], groups=layer["groups"]
    )
    mult = step * layer["scale"].float().view(1, -1, 1, 1)  # fp32, as the kernel
    return acc.float() * mult + layer["bias"].float().view(1, -1, 1, 1)


@torch.no_grad()
def served_forward(
    layers: list,
    x: torch.Tensor,
    quantized: bool = True,
    convolutions: str = "int8",
    conv_activations: str = CONV_ACTIVATIONS,
) -> torch.Tensor:
    """Logits (before softmax) of NCHW float inputs in the served arithmetic.

    convolutions: "int8" (our kernels, 7-bit activations) or "fp32" (tfjs-wasm on the dequantized weights),
    as the manifest's quantization.convolutions says; conv_activations: how the int8 convolutions code a
    signed input (the manifest's field of that name). quantized=False runs the same folded layers in plain
    fp32 (the BN-folding check).
    """
    if convolutions not in ("int8", "fp32"):
        raise ValueError(f"convolutions must be 'int8' or 'fp32', not {convolutions!r}")
    x = x.float()
    non_negative = False  # the image is signed; a ReLU makes activations >= 0, LRN and max pooling keep them so
    for layer in layers:
        op = layer["op"]
        if op == "conv2d" and quantized and convolutions == "int8":
            x = conv_int8(x, layer, MIN_MAX if non_negative else conv_activations)  # [0, max] after a ReLU
            non_negative = layer["activation"] == "relu"
        elif op == "conv2d":
            x = F.conv2d(
                x,
                layer["deq"] if quantized else layer["w"],
                layer["bias"],
                stride=layer["stride"],
                padding=layer["padding"],
                groups=layer["groups"],
            )
            non_negative = layer["activation"] == "relu"
        elif op == "dense":
            x = (
                dense_int8(x, layer["q"], layer["scale"], layer["bias"])
                if quantized
                else F.linear(x, layer["w"], layer["bias"])
            )
        elif op == "lrn":
            x = F.local_response_norm(x, layer["size"], layer["alpha"] * layer["size"], layer["beta"], layer["k"])
        elif op == "maxpool":
            x = F.max_pool2d(x, layer["window"], layer["stride"])
        elif op == "flatten":
            x = torch.flatten(x, 1)  # CHW order, matching the PyTorch-layout dense weights held here
        elif op == "softmax":
            continue  # logits are compared before softmax
        if layer.get("activation") == "relu":
            x = torch.relu(x)
    return x
