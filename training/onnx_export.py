"""Write an AlexNet-family model as an ONNX graph whose LRN layers are ONNX `LRN` nodes.

torch.onnx (1.13 at least) traces `nn.LocalResponseNorm` into the pads, pools and powers PyTorch computes it
with; other runtimes then run five ops instead of one, and the graph no longer looks like Caffe's AlexNet
(the ONNX model zoo's bvlc_alexnet has LRN nodes). ONNX's LRN is PyTorch's formula with the same alpha
(both divide it by size: https://onnx.ai/onnx/operators/onnx__LRN.html), so the node maps one to one.
"""

import copy
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F


class _LRNFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, size: int, alpha: float, beta: float, k: float):  # noqa: D102
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size: int, alpha: float, beta: float, k: float):  # noqa: D102
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class _OnnxLRN(nn.Module):
    def __init__(self, lrn: nn.LocalResponseNorm):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = lrn.size, lrn.alpha, lrn.beta, lrn.k

    def forward(self, x):
        return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)


class _WithSoftmax(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.softmax(self.model(x), dim=1)


def export_onnx(model: nn.Module, path: str, input_size: int, softmax: bool = False, opset: int = 13) -> None:
    """fp32 graph with input `input` [batch, 3, size, size] and output `logits` (`probs` with softmax=True)."""
    m = copy.deepcopy(model).float().cpu().eval()
    for name, module in list(m.features.named_children()):
        if isinstance(module, nn.LocalResponseNorm):
            m.features[int(name)] = _OnnxLRN(module)
    if softmax:
        m = _WithSoftmax(m)
    out = "probs" if softmax else "logits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding are not ours to act on
        torch.onnx.export(
            m,
            torch.zeros(1, 3, input_size, input_size),
            path,
            opset_version=opset,
            input_names=["input"],
            output_names=[out],
            dynamic_axes={"input": {0: "batch"}, out: {0: "batch"}},
        )
