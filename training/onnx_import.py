"""Read an AlexNet-family ONNX graph into a PyTorch model with `features` and `classifier` (training/model.py's
shape), so the one exporter (training/package.py) and `train.py --init` handle it like any other model.

The family is a single chain: Conv (any groups, square kernel, symmetric padding) / Relu / LRN / MaxPool, then
Flatten or Reshape to [N, C*H*W], then Gemm (or MatMul + Add) / Relu, optionally a final Softmax. Dropout and
Identity are skipped (inference), and so is an AveragePool of kernel 1 stride 1 (torchvision's
AdaptiveAvgPool2d((6, 6)) on a 6x6 map, as torch.onnx exports it at 224x224). Two layouts are known by name:
torchvision's (64-192-384-256-256, no LRN) and Caffe's bvlc_alexnet in the ONNX model zoo (the paper's
96-256-384-384-256 with group=2 in conv2, conv4, conv5, LRN with k=1, 227x227 input).

Anything else is refused with the first node that does not fit. Operator semantics: https://onnx.ai/onnx/operators/
"""

import numpy as np
import torch
import torch.nn as nn

from training.model import FeaturesThenClassifier, feature_shape


class OnnxImportError(ValueError):
    """The graph is not an AlexNet-family chain; the message names the node."""


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _square(node, what: str, values) -> int:
    values = list(values)
    if len(set(values)) != 1:
        raise OnnxImportError(f"{_where(node)}: {what} {values} is not square; the family has square ones")
    return int(values[0])


def _where(node) -> str:
    return f"node {node.name or '(unnamed)'!r} ({node.op_type})"


def _static_input_size(graph, initializers: set) -> int:
    """The square spatial side of the graph's image input, or 0 when it is not fixed in the graph."""
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise OnnxImportError(f"the graph has {len(inputs)} inputs; an AlexNet has one image input")
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or (dims[1] and dims[1] != 3):
        raise OnnxImportError(f"input {inputs[0].name!r} has shape {dims}; expected [N, 3, H, W]")
    return dims[2] if dims[2] and dims[2] == dims[3] else 0


def _conv(node, params: dict) -> nn.Conv2d:
    a = _attrs(node)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        raise OnnxImportError(
            f"{_where(node)}: auto_pad {a['auto_pad'].decode()} is not supported; pads must be explicit"
        )
    w = params.get(node.input[1])
    if w is None:
        raise OnnxImportError(f"{_where(node)}: its weights are not an initializer")
    b = params.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0], np.float32)
    pads = a.get("pads", [0, 0, 0, 0])
    if len(set(pads)) != 1:
        raise OnnxImportError(f"{_where(node)}: pads {list(pads)} are not the same on every side")
    if set(a.get("dilations", [1, 1])) != {1}:
        raise OnnxImportError(f"{_where(node)}: dilated convolutions are not in the family")
    k = _square(node, "kernel", w.shape[2:])
    groups = int(a.get("group", 1))
    conv = nn.Conv2d(
        w.shape[1] * groups,
        w.shape[0],
        k,
        stride=_square(node, "stride", a.get("strides", [1, 1])),
        padding=int(pads[0]),
        groups=groups,
    )
    conv.weight.data = torch.from_numpy(w.copy())
    conv.bias.data = torch.from_numpy(b.astype(np.float32).copy())
    return conv


def _maxpool(node) -> nn.MaxPool2d:
    a = _attrs(node)
    if set(a.get("pads", [0, 0, 0, 0])) != {0} or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        raise OnnxImportError(f"{_where(node)}: padded max pools are not served (no padding in the family)")
    k = _square(node, "kernel_shape", a["kernel_shape"])
    s = _square(node, "stride", a.get("strides", [1, 1]))
    # Caffe pools round up (ceil_mode=1); where that gives the same size as rounding down it is the same op,
    # which `_check_ceil_pools` verifies on the real feature map sizes.
    pool = nn.MaxPool2d(k, s)
    pool.onnx_ceil_mode = bool(a.get("ceil_mode", 0))
    return pool


def _lrn(node) -> nn.LocalResponseNorm:
    a = _attrs(node)
    size = int(a["size"])
    if size % 2 != 1:
        raise OnnxImportError(f"{_where(node)}: LRN size {size} is even; the family uses odd windows")
    # ONNX: y = x / (bias + alpha / size * sum x^2)^beta, as PyTorch's LocalResponseNorm: same alpha, k = bias.
    return nn.LocalResponseNorm(
        size, alpha=_f32(a.get("alpha", 1e-4)), beta=_f32(a.get("beta", 0.75)), k=_f32(a.get("bias", 1.0))
    )


def _f32(v: float) -> float:
    """ONNX stores float attributes as float32: 1e-4 arrives as 9.99999974e-05. Keep its shortest decimal."""
    return float(repr(np.float32(v)))


def _gemm(node, params: dict) -> nn.Linear:
    a = _attrs(node)
    w, b = params.get(node.input[1]), params.get(node.input[2]) if len(node.input) > 2 else None
    if w is None or a.get("transA", 0):
        raise OnnxImportError(f"{_where(node)}: expected Gemm(activations, initializer weights) without transA")
    w = w * float(a.get("alpha", 1.0))
    if not a.get("transB", 0):
        w = w.T  # B is [in, out]; a Linear holds [out, in]
    b = np.zeros(w.shape[0], np.float32) if b is None else b.reshape(-1) * float(a.get("beta", 1.0))
    return _linear(w, b)


def _linear(w: np.ndarray, b: np.ndarray) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0])
    lin.weight.data = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    lin.bias.data = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
    return lin


def read_onnx(path: str) -> tuple:
    """(model with features/classifier, input side from the graph or 0, ended with Softmax) from an ONNX file."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(path).graph
    except Exception as e:  # noqa: BLE001 - protobuf's errors say little; name the file
        raise OnnxImportError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})") from e
    params = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    for node in graph.node:  # old exporters (and some zoo graphs) store shapes and weights as Constant nodes
        if node.op_type == "Constant":
            params[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
    input_size = _static_input_size(graph, set(params))
    current = next(i.name for i in graph.input if i.name not in params)
    features, classifier, flat, softmax, matmul = [], [], False, False, None
    for node in graph.node:
        op = node.op_type
        if op == "Constant":
            continue
        data_inputs = [i for i in node.input if i and i not in params]
        if op == "Identity" and not data_inputs:  # torch.onnx aliases weights used twice this way
            params[node.output[0]] = params[node.input[0]]
            continue
        if softmax or data_inputs != [current]:
            why = "it follows the final Softmax" if softmax else f"reads {data_inputs}, the chain is at {current!r}"
            raise OnnxImportError(f"{_where(node)} does not continue a single chain of layers ({why})")
        if matmul is not None and op != "Add":  # a MatMul without a bias
            classifier.append(_linear(matmul.T, np.zeros(matmul.shape[1], np.float32)))
            matmul = None
        if op in ("Dropout", "Identity"):
            pass
        elif op == "Relu":
            (classifier if flat else features).append(nn.ReLU(inplace=True))
        elif not flat and op == "Conv":
            features.append(_conv(node, params))
        elif not flat and op == "LRN":
            features.append(_lrn(node))
        elif not flat and op == "MaxPool":
            features.append(_maxpool(node))
        elif not flat and op == "AveragePool" and _is_identity_pool(node):
            pass
        elif not flat and op in ("Flatten", "Reshape"):
            _check_flatten(node, params)
            flat = True
        elif flat and op == "Gemm":
            classifier.append(_gemm(node, params))
        elif flat and op == "MatMul" and node.input[1] in params:
            matmul = params[node.input[1]]
        elif flat and op == "Add" and matmul is not None and node.input[1] in params:
            classifier.append(_linear(matmul.T, params[node.input[1]].reshape(-1)))
            matmul = None
        elif flat and op == "Softmax" and classifier:
            softmax = True
        else:
            raise OnnxImportError(
                f"{_where(node)} does not fit the AlexNet family: expected "
                + (
                    "Gemm, MatMul+Add, Relu, Dropout or a final Softmax after the flatten"
                    if flat
                    else "Conv, Relu, LRN, MaxPool, then Flatten/Reshape"
                )
            )
        current = node.output[0]
    if matmul is not None:
        classifier.append(_linear(matmul.T, np.zeros(matmul.shape[1], np.float32)))
    n_conv = sum(isinstance(m, nn.Conv2d) for m in features)
    n_dense = sum(isinstance(m, nn.Linear) for m in classifier)
    if not n_conv or not n_dense:
        raise OnnxImportError(
            f"{path}: an AlexNet has convolutions, a flatten and dense layers; this graph has "
            f"{n_conv} convolutions and {n_dense} dense layers"
        )
    model = FeaturesThenClassifier()
    model.features = nn.Sequential(*features)
    model.classifier = nn.Sequential(*classifier)
    check_shapes(model, input_size, path)
    return model.eval(), input_size, softmax


def _is_identity_pool(node) -> bool:
    a = _attrs(node)
    if (
        node.op_type == "AveragePool"
        and set(a.get("kernel_shape", [])) == {1}
        and set(a.get("strides", [1])) == {1}
        and set(a.get("pads", [0])) == {0}
    ):
        return True
    raise OnnxImportError(
        f"{_where(node)}: average pooling is not in the family (only the identity 1x1 pool "
        f"torch.onnx writes for torchvision's AdaptiveAvgPool2d at 224x224)"
    )


def _check_flatten(node, params: dict) -> None:
    """Flatten(axis=1), or Reshape to [N or 0 or -1 or 1, -1 or C*H*W]: a batch of vectors in CHW order."""
    if node.op_type == "Flatten":
        if _attrs(node).get("axis", 1) != 1:
            raise OnnxImportError(f"{_where(node)}: only axis=1 flattens an NCHW map into vectors")
        return
    shape = params.get(node.input[1]) if len(node.input) > 1 else None
    if shape is None:
        shape = np.array(_attrs(node).get("shape", []))  # opset < 5 keeps the shape as an attribute
    if shape is None or shape.ndim != 1 or len(shape) != 2:
        raise OnnxImportError(f"{_where(node)}: a Reshape must give [batch, features], not {shape}")


def check_shapes(model: FeaturesThenClassifier, input_size: int, path: str) -> None:
    """fc6's inputs must equal the feature map of the graph's input; Caffe's ceil pools must equal floor ones."""
    if not input_size:
        return  # checked at use, when the caller knows the input size
    check_pools(model.features, input_size, path)
    c, h, w = feature_shape(model.features, input_size)
    first = next(m for m in model.classifier if isinstance(m, nn.Linear))
    if first.in_features != c * h * w:
        raise OnnxImportError(
            f"{path}: the first dense layer takes {first.in_features} inputs but the feature map "
            f"at {input_size}x{input_size} is {c}x{h}x{w}"
        )


def check_pools(features: nn.Sequential, input_size: int, path: str) -> None:
    """Caffe's max pools round up (ceil_mode=1); the Worker's round down. Same op where both give one size."""
    side = input_size
    for m in features:
        if isinstance(m, nn.Conv2d):
            side = (side + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
        elif isinstance(m, nn.MaxPool2d):
            floor = (side - m.kernel_size) // m.stride + 1
            ceil = -(-(side - m.kernel_size) // m.stride) + 1
            if getattr(m, "onnx_ceil_mode", False) and ceil != floor:
                raise OnnxImportError(
                    f"{path}: a ceil-mode MaxPool ({side} -> {ceil}) differs from the served "
                    f"floor mode ({floor}) at input {input_size}"
                )
            side = floor
