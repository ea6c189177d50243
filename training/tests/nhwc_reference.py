"""An independent numpy forward of a model package, written from docs/model-package.md alone.

NHWC activations, HWIO convolution weights, the NHWC flatten order and the served int8 dense arithmetic,
so a layout mistake in the exporter (which works in PyTorch's NCHW world) shows up as wrong logits.
"""

import numpy as np


def conv2d(x, q, scale, bias, stride, padding, groups):
    """x [H, W, C]; q [k, k, C/groups, F] int8; returns [Ho, Wo, F] fp32 (dequantized weights, as served)."""
    k, _, cin_g, f = q.shape
    w = q.astype(np.float32) * scale.astype(np.float32)[None, None, None, :]
    x = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
    ho = (x.shape[0] - k) // stride + 1
    wo = (x.shape[1] - k) // stride + 1
    out = np.empty((ho, wo, f), np.float32)
    fg = f // groups
    for g in range(groups):
        xs = x[:, :, g * cin_g : (g + 1) * cin_g]
        cols = np.empty((ho, wo, k, k, cin_g), np.float32)
        for i in range(k):
            for j in range(k):
                cols[:, :, i, j, :] = xs[i : i + stride * ho : stride, j : j + stride * wo : stride, :]
        wg = w[:, :, :, g * fg : (g + 1) * fg].reshape(k * k * cin_g, fg)
        out[:, :, g * fg : (g + 1) * fg] = (cols.reshape(ho * wo, -1) @ wg).reshape(ho, wo, fg)
    return out + bias.astype(np.float32)


def input_code(x, rule):
    """(inv, step, lo, hi) of docs/model-package.md's 7-bit codes for one tensor, each in fp32."""
    if rule == "7-bit-per-tensor-dynamic":  # symmetric: -63..63 around zero point 64
        m = np.float32(np.abs(x).max())
        return (np.float32(63) / m if m > 0 else np.float32(0)), m / np.float32(63), -63, 63
    low, high = np.float32(min(x.min(), 0)), np.float32(max(x.max(), 0))
    r = np.float32(high - low)
    if r == 0:
        return np.float32(0), np.float32(0), 0, 127
    inv = np.float32(127) / r
    zp = int(np.clip(np.rint(np.float32(-low * inv)), 0, 127))
    return inv, r / np.float32(127), -zp, 127 - zp


def conv2d_int8(x, q, scale, bias, stride, padding, groups, rule):
    """The int8 convolution: 7-bit codes of x per tensor (zero point cancels, so codes are centred here),
    exact integer sums, then fp32 scale and bias, each step rounded to fp32."""
    x = x.astype(np.float32)
    inv, step, lo, hi = input_code(x, rule)
    xq = np.clip(np.rint(x * inv), lo, hi).astype(np.int64)  # np.rint rounds half to even
    k, _, cin_g, f = q.shape
    xq = np.pad(xq, ((padding, padding), (padding, padding), (0, 0)))
    ho = (xq.shape[0] - k) // stride + 1
    wo = (xq.shape[1] - k) // stride + 1
    acc = np.zeros((ho, wo, f), np.int64)
    fg = f // groups
    for g in range(groups):
        for i in range(k):
            for j in range(k):
                patch = xq[i : i + stride * ho : stride, j : j + stride * wo : stride, g * cin_g : (g + 1) * cin_g]
                acc[:, :, g * fg : (g + 1) * fg] += patch @ q[i, j, :, g * fg : (g + 1) * fg].astype(np.int64)
    mult = step * scale.astype(np.float32)
    return acc.astype(np.float32) * mult + bias.astype(np.float32)


def lrn(x, size, alpha, beta, k):
    half = (size - 1) // 2
    sq = np.pad(x.astype(np.float32) ** 2, ((0, 0), (0, 0), (half, half)))
    s = sum(sq[:, :, i : i + x.shape[2]] for i in range(size))
    return x / (k + alpha * s) ** beta


def maxpool(x, window, stride):
    ho = (x.shape[0] - window) // stride + 1
    wo = (x.shape[1] - window) // stride + 1
    out = np.full((ho, wo, x.shape[2]), -np.inf, np.float32)
    for i in range(window):
        for j in range(window):
            out = np.maximum(out, x[i : i + stride * ho : stride, j : j + stride * wo : stride, :])
    return out


def dense_int8(x, q, scale, bias):
    x = x.astype(np.float32)
    k = x.shape[0]
    big_q = min(32767, (2**31 - 1) // (127 * k))
    m = np.float32(np.abs(x).max())
    if m == 0:
        return bias.astype(np.float32).copy()
    inv = np.float32(big_q) / m
    xq = np.clip(np.rint(x * inv), -big_q, big_q).astype(np.int64)
    acc = q.astype(np.int64) @ xq
    assert np.abs(acc).max() <= 2**31 - 1
    return acc.astype(np.float32) * ((m / np.float32(big_q)) * scale.astype(np.float32)) + bias.astype(np.float32)


def forward(manifest, weights, image_hwc):
    """Logits (before softmax) of one preprocessed NHWC image."""
    x = image_hwc.astype(np.float32)
    int8_convs = manifest["quantization"].get("convolutions", "fp32") == "int8"
    # after a ReLU the range is [0, max] under either rule; a signed input follows the package's rule
    rule = manifest["quantization"].get("conv_activations", "7-bit-per-tensor-dynamic")
    non_negative = False
    for layer in manifest["layers"]:
        op = layer["op"]
        if op == "conv2d":
            n = layer["name"]
            args = (
                x,
                weights[n + ".weight"],
                weights[n + ".scale"],
                weights[n + ".bias"],
                layer["stride"],
                layer["padding"],
                layer.get("groups", 1),
            )
            x = (
                conv2d_int8(*args, "7-bit-per-tensor-min-max" if non_negative else rule)
                if int8_convs
                else conv2d(*args)
            )
            non_negative = layer.get("activation") == "relu"
        elif op == "dense":
            n = layer["name"]
            x = dense_int8(x, weights[n + ".weight"], weights[n + ".scale"], weights[n + ".bias"])
        elif op == "lrn":
            x = lrn(x, layer["size"], layer["alpha"], layer["beta"], layer["k"])
        elif op == "maxpool":
            x = maxpool(x, layer["window"], layer["stride"])
        elif op == "flatten":
            x = x.reshape(-1)  # (h * W + w) * C + c
        elif op == "softmax":
            continue
        if layer.get("activation") == "relu":
            x = np.maximum(x, 0)
    return x
