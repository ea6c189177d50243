"""An int8 model package as one ONNX graph that onnxruntime runs natively, with the Worker's arithmetic.

`package_to_onnx(manifest, weights)` builds (with onnx.helper, opset 13) the package's layers as the manifest
lists them (conv2d, lrn, maxpool, flatten, dense, softmax). The weight initializers are the package's int8
tensors (INT8; conv weights re-laid from HWIO to ONNX's OIHW, dense weights transposed to [in, out], the
values untouched) and its fp32 per-channel scales and biases. The graph takes the Worker's input: one
preprocessed NHWC float32 tensor `input` [batch, height, width, channels] (`layout="nchw"` drops the leading
Transpose for a [batch, channels, height, width] input), and returns `logits` and `probs` (their softmax).

Operator form (`form`), chosen by measurement (docs/onnx-export.md has the table, onnxruntime 1.30):

- "cast" (the default): each example's 7-bit input code (the manifest's `conv_activations` rule, min-max
  with a zero point or symmetric; [0, max] after a ReLU) computed with float ops exactly as the Worker
  computes it (fp32 steps, Round = half to even); the int8 weights Cast to fp32 (onnxruntime folds that once
  at load), an fp32 Conv sums code x weight, then Mul by (step * scale_o) (the per-example step times the
  per-channel weight scale, one fp32 product, as the Worker's kernel) and Add bias. Dense layers: the Worker's
  int16 row codes (Q = min(32767, (2^31 - 1) // (127 K))) through an fp32 MatMul, the same epilogue. The sums
  of integer products are exact in fp32 while a partial sum stays under 2^24, and within 2^-24 beyond.
  Measured: 1e-7 .. 3e-5 relative L2 from the Worker's sample logits on every fixture package, the shipped
  model's 10,000-image top-1 equal to its manifest's; ~3x faster than "integer" on onnxruntime-node and ~5x
  on onnxruntime-web (whose ConvInteger is im2col + u8s8 GEMM, without fp32 Conv's blocked kernels).
- "integer": the same codes as uint8 (code + 128, zero point 128; ConvInteger pads with the zero point, i.e.
  code 0) into ConvInteger against the int8 weights: exact int32 sums, the Worker's. MatMulInteger takes
  8-bit operands only, so a dense row's int16 code is split into a high byte (uint8, zero point 128) and a
  low byte (uint8): two MatMulIntegers against the same int8 weights, recombined in int32 as hi * 256 + lo.
  The same distances as "cast"; the weights stay int8 in memory (cast holds them as fp32 once loaded).
- "qdq": DequantizeLinear of the int8 weights (per output channel), float Conv / MatMul, activations coded
  by QuantizeLinear/DequantizeLinear with per-example scales (axis 0): onnxruntime cannot fuse QDQ pairs
  whose scales are computed at run time, so everything runs in fp32 on dequantized values; dense layers use
  8-bit activations (QuantizeLinear has no int16 before opset 21). Up to 1.6% from the Worker's logits.
- "dynamic": DynamicQuantizeLinear + ConvInteger / MatMulInteger, what onnxruntime's quantize_dynamic
  writes: 8-bit uint8 codes over the whole batch's min..max, so an example's answer depends on the batch
  it travels with, and the codes are not the Worker's (8-bit where it uses 7-bit and 16-bit). Up to 1.2%.

Per-example codes work for any batch size in "cast" and "integer": the zero point is a constant (128) or
cancelled (centred codes), and the per-example step multiplies after the sums.

Packages whose convolutions are served in fp32 (`quantization.convolutions` "fp32" or absent, e.g. imported
ones) get DequantizeLinear(int8 weights, per-channel scale) + float Conv under every form; dense layers stay
int8 as served.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FORMS = ("cast", "integer", "qdq", "dynamic")
OPSET = 13
INT32_MAX = 2**31 - 1
MIN_MAX = "7-bit-per-tensor-min-max"
SYMMETRIC = "7-bit-per-tensor-dynamic"


class _Graph:
    """Nodes and initializers with generated names."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, dtype, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def init(self, array: np.ndarray, name: str) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list, hint: str = "", **attrs) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def f32(self, value) -> str:
        return self.const(value, np.float32)


def _safe_div(g: _Graph, num: str, den: str) -> str:
    """num / den where den > 0, else 0 (the Worker's inv = 0 for an all-zero tensor)."""
    positive = g.op("Greater", [den, g.f32(0.0)])
    safe = g.op("Where", [positive, den, g.f32(1.0)])
    return g.op("Where", [positive, g.op("Div", [num, safe]), g.f32(0.0)])


def _input_code(g: _Graph, x: str, rule: str, axes: list) -> tuple:
    """(q, step) of docs/model-package.md's 7-bit codes, per example: q centred (zero point cancelled, in
    -127..127 as fp32 integers), step fp32 with the example's shape kept (keepdims)."""
    if rule == SYMMETRIC:
        m = g.op("ReduceMax", [g.op("Abs", [x])], axes=axes, keepdims=1)
        inv = _safe_div(g, g.f32(63.0), m)
        q = g.op("Clip", [g.op("Round", [g.op("Mul", [x, inv])]), g.f32(-63.0), g.f32(63.0)])
        return q, g.op("Div", [m, g.f32(63.0)])
    if rule != MIN_MAX:
        raise ValueError(f"conv_activations must be {MIN_MAX!r} or {SYMMETRIC!r}, not {rule!r}")
    lo = g.op("Min", [g.op("ReduceMin", [x], axes=axes, keepdims=1), g.f32(0.0)])
    hi = g.op("Max", [g.op("ReduceMax", [x], axes=axes, keepdims=1), g.f32(0.0)])
    r = g.op("Sub", [hi, lo])
    inv = _safe_div(g, g.f32(127.0), r)
    zp = g.op("Clip", [g.op("Round", [g.op("Mul", [g.op("Neg", [lo]), inv])]), g.f32(0.0), g.f32(127.0)])
    q = g.op("Round", [g.op("Mul", [x, inv])])
    q = g.op("Max", [g.op("Min", [q, g.op("Sub", [g.f32(127.0), zp])]), g.op("Neg", [zp])])
    return q, g.op("Div", [r, g.f32(127.0)])


def _to_u8(g: _Graph, q: str, offset: float = 128.0) -> str:
    return g.op("Cast", [g.op("Add", [q, g.f32(offset)])], to=TensorProto.UINT8)


def _conv(g: _Graph, x: str, layer: dict, weights: dict, int8: bool, rule: str, form: str) -> str:
    name = layer["name"]
    w = g.init(np.asarray(weights[name + ".weight"], np.int8).transpose(3, 2, 0, 1), name + ".weight")  # OIHW
    scale = np.asarray(weights[name + ".scale"], np.float32)
    bias = np.asarray(weights[name + ".bias"], np.float32)
    k, p = layer["kernel"], layer["padding"]
    attrs = {"kernel_shape": [k, k], "strides": [layer["stride"]] * 2, "pads": [p] * 4, "group": layer.get("groups", 1)}
    if not int8 or form == "qdq":
        s = g.init(scale, name + ".scale")
        wf = g.op("DequantizeLinear", [w, s, g.const(np.zeros(len(scale)), np.int8, "zp")], axis=0)
        if int8:  # codes in and out of QuantizeLinear with per-example (axis 0) scales, then fp32
            _, step = _input_code(g, x, rule, [1, 2, 3])
            step = g.op("Where", [g.op("Greater", [step, g.f32(0.0)]), step, g.f32(1.0)])
            step = g.op("Reshape", [step, g.const([-1], np.int64)])
            if rule == MIN_MAX:
                lo = g.op("Min", [g.op("ReduceMin", [x], axes=[1, 2, 3], keepdims=0), g.f32(0.0)])
                zp = g.op("Clip", [g.op("Round", [g.op("Div", [g.op("Neg", [lo]), step])]), g.f32(0), g.f32(127)])
            else:
                zp = g.op("Add", [g.op("Mul", [step, g.f32(0.0)]), g.f32(64.0)])
            zp = g.op("Cast", [zp], to=TensorProto.UINT8)
            x = g.op("DequantizeLinear", [g.op("QuantizeLinear", [x, step, zp], axis=0), step, zp], axis=0)
        return g.op("Conv", [x, wf, g.init(bias, name + ".bias")], **attrs)
    s = g.init(scale.reshape(1, -1, 1, 1), name + ".scale")  # per output channel, NCHW broadcast
    if form == "dynamic":
        xq, xs, xzp = (g.name(h) for h in ("xq", "xscale", "xzp"))
        g.nodes.append(helper.make_node("DynamicQuantizeLinear", [x], [xq, xs, xzp], name=g.name("dql")))
        acc = g.op("Cast", [g.op("ConvInteger", [xq, w, xzp], **attrs)], to=TensorProto.FLOAT)
        mult = g.op("Mul", [xs, s])
    else:
        q_x, step = _input_code(g, x, rule, [1, 2, 3])
        if form == "cast":  # the codes as fp32 integers against Cast(int8 weights), folded once at load
            acc = g.op("Conv", [q_x, g.op("Cast", [w], to=TensorProto.FLOAT)], **attrs)
        else:  # integer: code + 128 as uint8 with zero point 128, exact int32 sums
            acc = g.op("ConvInteger", [_to_u8(g, q_x), w, g.const(128, np.uint8, "zp")], **attrs)
            acc = g.op("Cast", [acc], to=TensorProto.FLOAT)
        mult = g.op("Mul", [step, s])  # step * scale_o, one fp32 product as the Worker's kernel
    return g.op("Add", [g.op("Mul", [acc, mult]), g.init(bias.reshape(1, -1, 1, 1), name + ".bias")])


def _dense(g: _Graph, x: str, layer: dict, weights: dict, form: str) -> str:
    name = layer["name"]
    q = np.asarray(weights[name + ".weight"], np.int8)
    scale = np.asarray(weights[name + ".scale"], np.float32)
    bias = g.init(np.asarray(weights[name + ".bias"], np.float32), name + ".bias")
    w = g.init(q.T, name + ".weight")  # [units, in] -> [in, units] for MatMul
    s = g.init(scale, name + ".scale")
    k = q.shape[1]
    if form == "dynamic":
        xq, xs, xzp = (g.name(h) for h in ("xq", "xscale", "xzp"))
        g.nodes.append(helper.make_node("DynamicQuantizeLinear", [x], [xq, xs, xzp], name=g.name("dql")))
        acc = g.op("Cast", [g.op("MatMulInteger", [xq, w, xzp])], to=TensorProto.FLOAT)
        return g.op("Add", [g.op("Mul", [acc, g.op("Mul", [xs, s])]), bias])
    if form == "qdq":  # 8-bit symmetric per-example activations: QuantizeLinear has no int16 in opset 13
        m = g.op("ReduceMax", [g.op("Abs", [x])], axes=[1], keepdims=0)
        step = g.op("Div", [m, g.f32(127.0)])
        step = g.op("Where", [g.op("Greater", [step, g.f32(0.0)]), step, g.f32(1.0)])
        zp = g.op("Cast", [g.op("Mul", [step, g.f32(0.0)])], to=TensorProto.INT8)
        x = g.op("DequantizeLinear", [g.op("QuantizeLinear", [x, step, zp], axis=0), step, zp], axis=0)
        wf = g.op("DequantizeLinear", [w, s, g.const(np.zeros(len(scale)), np.int8, "zp")], axis=1)
        return g.op("Add", [g.op("MatMul", [x, wf]), bias])
    # integer: the Worker's int16 codes, split into two bytes for 8-bit MatMulInteger, recombined in int32
    big_q = float(min(32767, INT32_MAX // (127 * k)))
    m = g.op("ReduceMax", [g.op("Abs", [x])], axes=[1], keepdims=1)
    inv = _safe_div(g, g.f32(big_q), m)
    xq = g.op("Clip", [g.op("Round", [g.op("Mul", [x, inv])]), g.f32(-big_q), g.f32(big_q)])
    mult = g.op("Mul", [g.op("Div", [m, g.f32(big_q)]), s])  # (m / Q) * scale_o, fp32
    if form == "cast":
        acc = g.op("MatMul", [xq, g.op("Cast", [w], to=TensorProto.FLOAT)])
        return g.op("Add", [g.op("Mul", [acc, mult]), bias])
    hi = g.op("Floor", [g.op("Div", [xq, g.f32(256.0)])])  # -128..127
    lo = g.op("Sub", [xq, g.op("Mul", [hi, g.f32(256.0)])])  # 0..255
    acc_hi = g.op("MatMulInteger", [_to_u8(g, hi), w, g.const(128, np.uint8, "zp")])
    acc_lo = g.op("MatMulInteger", [_to_u8(g, lo, 0.0), w])
    acc = g.op("Add", [g.op("Mul", [acc_hi, g.const(256, np.int32)]), acc_lo])
    return g.op("Add", [g.op("Mul", [g.op("Cast", [acc], to=TensorProto.FLOAT), mult]), bias])


def package_to_onnx(manifest: dict, weights: dict, form: str = "cast", layout: str = "nhwc") -> onnx.ModelProto:
    """The ONNX model of a package (manifest dict, weights name -> numpy array as safetensors_io reads them)."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, not {form!r}")
    if layout not in ("nhwc", "nchw"):
        raise ValueError(f"layout must be 'nhwc' or 'nchw', not {layout!r}")
    quant = manifest.get("quantization", {})
    int8 = quant.get("convolutions", "fp32") == "int8"
    rule = quant.get("conv_activations", SYMMETRIC)
    h, w, c = (manifest["input"][k] for k in ("height", "width", "channels"))
    g = _Graph()
    x = "input"
    if layout == "nhwc":
        x = g.op("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    non_negative, flat, probs = False, False, None
    for layer in manifest["layers"]:
        op = layer["op"]
        if op == "conv2d":
            x = _conv(g, x, layer, weights, int8, MIN_MAX if non_negative else rule, form)
            non_negative = layer.get("activation") == "relu"
        elif op == "dense":
            if not flat:
                raise ValueError(f"dense layer {layer['name']} before a flatten")
            x = _dense(g, x, layer, weights, form)
        elif op == "lrn":  # ONNX divides alpha by size (as PyTorch); the manifest holds the paper's alpha
            size = layer["size"]
            x = g.op("LRN", [x], size=size, alpha=layer["alpha"] * size, beta=layer["beta"], bias=layer["k"])
        elif op == "maxpool":
            x = g.op("MaxPool", [x], kernel_shape=[layer["window"]] * 2, strides=[layer["stride"]] * 2)
        elif op == "flatten":  # the package's dense columns are in NHWC order
            x = g.op("Flatten", [g.op("Transpose", [x], perm=[0, 2, 3, 1])], axis=1)
            flat = True
        elif op == "softmax":
            probs = g.op("Softmax", [x], "probs", axis=-1)
        else:
            raise ValueError(f"cannot export layer op {op!r}")
        if layer.get("activation") == "relu":
            x = g.op("Relu", [x])
    if not flat:
        raise ValueError("the package has no flatten layer")
    g.nodes.append(helper.make_node("Identity", [x], ["logits"], name="logits"))
    classes = len(manifest["labels"])
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])]
    if probs is not None:
        g.nodes.append(helper.make_node("Identity", [probs], ["probs"], name="probs"))
        outputs.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes]))
    shape = ["batch", h, w, c] if layout == "nhwc" else ["batch", c, h, w]
    graph = helper.make_graph(
        g.nodes,
        manifest["id"],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        outputs,
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="alexnet-edge",
        doc_string=f"{manifest['id']}: int8 package as served ({form}); input {layout.upper()} preprocessed",
    )
    model.ir_version = 7  # opset 13's IR: onnxruntime 1.8 onwards loads it
    helper.set_model_props(model, {"labels": "\n".join(manifest["labels"]), "layout": layout, "form": form})
    onnx.checker.check_model(model)
    return model
