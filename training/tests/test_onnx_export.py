"""ONNX export: LRN as one ONNX LRN node with PyTorch's parameters, a dynamic batch, and the same logits back."""

import numpy as np
import onnx
import torch

from onnx_sources import caffe_alexnet
from training.onnx_export import export_onnx
from training.onnx_import import read_onnx


def test_lrn_becomes_an_lrn_node_and_the_graph_reads_back_to_the_same_logits(tmp_path):
    source = caffe_alexnet(0.0625, 67, 10)
    path = str(tmp_path / "caffe.onnx")
    export_onnx(source, path, 67)
    graph = onnx.load(path).graph
    lrn = [n for n in graph.node if n.op_type == "LRN"]
    assert len(lrn) == 2 and not any(n.op_type == "Pow" for n in graph.node)  # not decomposed
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in lrn[0].attribute}
    module = source.features[2]
    assert (attrs["size"], attrs["beta"], attrs["bias"]) == (module.size, module.beta, module.k)
    assert attrs["alpha"] == float(np.float32(module.alpha))  # ONNX stores float32; alpha itself, not alpha/size
    assert [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch dimension
    model, size, softmax = read_onnx(path)
    assert (size, softmax) == (67, False)
    x = torch.randn(3, 3, 67, 67)
    with torch.no_grad():
        assert torch.allclose(model(x), source(x), rtol=0, atol=1e-5 * source(x).abs().max().item())


def test_softmax_adds_a_probs_output_and_leaves_the_model_itself_alone(tmp_path):
    source = caffe_alexnet(0.0625, 67, 4)
    path = str(tmp_path / "probs.onnx")
    export_onnx(source, path, 67, softmax=True)
    assert [o.name for o in onnx.load(path).graph.output] == ["probs"]
    assert isinstance(source.features[2], torch.nn.LocalResponseNorm)  # the export worked on a copy
    _, _, softmax = read_onnx(path)
    assert softmax is True
