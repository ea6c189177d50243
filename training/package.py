"""Write an alexnet-edge model package (docs/model-package.md): manifest.json, weights.safetensors,
samples.safetensors; plus `<package dir>.onnx` beside it (fp32 model for benchmarks, not part of the package).

Layout is settled here, once: conv weights OIHW -> HWIO, the first dense layer's columns from PyTorch's CHW
flatten order to NHWC order, dense weights stay [out, in]. The Worker copies the tensors straight into place.
"""

import datetime
import hashlib
import json
import os
import re
import warnings

import torch

from training import safetensors_io
from training.quantize import CONV_ACTIVATIONS, fold_and_quantize, served_forward

FORMAT = "alexnet-edge.model/1"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
# Sample parity tolerance written into the manifest: |worker - logits| <= abs + rel * max|logits_row|.
# The Worker sums convolutions in another order (fp32) and may round a few int16 activations the other way;
# measured differences are ~1e-4 relative, so 2% leaves room without hiding a layout bug (those are O(1)).
TOLERANCE = {"abs": 0.02, "rel": 0.02}
MANIFEST_KEYS = (
    "op",
    "name",
    "filters",
    "kernel",
    "stride",
    "padding",
    "groups",
    "activation",
    "size",
    "alpha",
    "beta",
    "k",
    "window",
    "units",
)


def imagenet_labels() -> list:
    """The 1000 ImageNet class names in torchvision's output order (copied from torchvision 0.14's _meta.py)."""
    with open(os.path.join(os.path.dirname(__file__), "imagenet_labels.txt")) as f:
        labels = [line.rstrip("\n") for line in f if line.strip()]
    assert len(labels) == 1000, f"imagenet_labels.txt holds {len(labels)} labels, not 1000"
    return labels


def served_tensors(layers: list) -> dict:
    """name -> tensor in the Worker's layout, in layer order (weight, scale, bias per layer)."""
    out, flatten_chw, first_dense = {}, None, True
    for layer in layers:
        if layer["op"] == "flatten":
            flatten_chw = layer["chw"]
        if layer["op"] not in ("conv2d", "dense"):
            continue
        q = layer["q"]
        if layer["op"] == "conv2d":
            q = q.permute(2, 3, 1, 0)  # OIHW -> HWIO [kh, kw, in/groups, out]
        elif first_dense and flatten_chw is not None:
            c, h, w = flatten_chw  # columns: CHW order -> NHWC (h * W + w) * C + c
            q = q.reshape(q.shape[0], c, h, w).permute(0, 2, 3, 1).reshape(q.shape[0], -1)
        if layer["op"] == "dense":
            first_dense = False
        out[layer["name"] + ".weight"] = q.contiguous()
        out[layer["name"] + ".scale"] = layer["scale"].float().contiguous()
        out[layer["name"] + ".bias"] = layer["bias"].float().contiguous()
    return out


def manifest_layers(layers: list) -> list:
    return [{k: layer[k] for k in MANIFEST_KEYS if k in layer} for layer in layers]


def _file_ref(name: str, blob: bytes) -> dict:
    return {"file": name, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}


def export_onnx(model: torch.nn.Module, path: str, input_size: int) -> str:
    """fp32 ONNX for benchmarks against other runtimes; returns an error string instead of failing the export."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 1.13's exporter warns about constant folding of LRN's slices
            torch.onnx.export(
                model.eval(),
                torch.zeros(1, 3, input_size, input_size),
                path,
                opset_version=13,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
        return ""
    except Exception as e:  # noqa: BLE001 - ONNX is a by-product; the package matters
        return f"{type(e).__name__}: {e}"


@torch.no_grad()
def export_package(
    model: torch.nn.Module,
    out_dir: str,
    model_id: str,
    input_size: int,
    preprocess: dict,
    labels: list,
    sample_inputs: torch.Tensor,
    metrics: dict,
    training: dict,
    overwrite: bool = False,
    onnx: bool = True,
    convolutions: str = "int8",
    calibration: dict = None,
) -> dict:
    """Write the package; `sample_inputs` are preprocessed NCHW tensors. Returns the manifest.

    convolutions: where the Worker runs them, "int8" (our kernels) or "fp32" (tfjs-wasm), for a model whose
    int8 error is too large; the sample logits are computed in that arithmetic. calibration: the manifest's
    `calibration` block (training/calibration.py); the samples then carry their `ood_scores`.
    """
    if not ID_PATTERN.match(model_id):
        raise ValueError(f"model id {model_id!r} does not match {ID_PATTERN.pattern}")
    if os.path.exists(os.path.join(out_dir, "manifest.json")) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a package; packages are immutable, choose a new id")
    model = model.eval().float().cpu()
    layers = fold_and_quantize(model)
    dense = [layer for layer in layers if layer["op"] == "dense"]
    if dense[-1]["units"] != len(labels):
        raise ValueError(f"the last dense layer has {dense[-1]['units']} units but there are {len(labels)} labels")
    os.makedirs(out_dir, exist_ok=True)
    weights = safetensors_io.write(
        os.path.join(out_dir, "weights.safetensors"), served_tensors(layers), {"format": FORMAT, "id": model_id}
    )
    xs = sample_inputs.float()
    logits = served_forward(layers, xs, convolutions=convolutions, conv_activations=CONV_ACTIVATIONS)
    tensors = {
        "inputs": xs.permute(0, 2, 3, 1).contiguous(),  # NHWC, already preprocessed
        "logits": logits,
        "logits_fp32": model(xs).float(),
    }
    if calibration:
        from training.calibration import ood_score

        tensors["ood_scores"] = torch.from_numpy(ood_score(calibration["ood"], logits.double().numpy(), xs.numpy()))
        tensors["ood_scores"] = tensors["ood_scores"].float()
    samples = safetensors_io.write(
        os.path.join(out_dir, "samples.safetensors"), tensors, {"format": FORMAT, "id": model_id}
    )
    manifest = {
        "format": FORMAT,
        "id": model_id,
        "input": {"height": input_size, "width": input_size, "channels": 3},
        "preprocess": preprocess,
        "layers": manifest_layers(layers),
        "labels": list(labels),
        "weights": _file_ref("weights.safetensors", weights),
        "samples": dict(_file_ref("samples.safetensors", samples), count=len(xs), tolerance=TOLERANCE),
        "quantization": dict(
            {"weights": "int8-symmetric-per-output-channel", "convolutions": convolutions},
            **({"conv_activations": CONV_ACTIVATIONS} if convolutions == "int8" else {}),
            dense_activations="int16-symmetric-per-tensor-dynamic",
        ),
        "metrics": metrics,
        "training": dict({"date": datetime.date.today().isoformat()}, **training),
    }
    if calibration:
        manifest["calibration"] = calibration
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    if onnx:
        err = export_onnx(model, os.path.normpath(out_dir) + ".onnx", input_size)
        if err:
            print(f"warning: no ONNX file written ({err})")
    return manifest


def load_package(pkg_dir: str) -> tuple:
    """(manifest, weights, samples) with the byte lengths and SHA-256 checked, as the Worker does."""
    with open(os.path.join(pkg_dir, "manifest.json")) as f:
        manifest = json.load(f)
    out = [manifest]
    for ref in (manifest["weights"], manifest["samples"]):
        with open(os.path.join(pkg_dir, ref["file"]), "rb") as f:
            blob = f.read()
        if len(blob) != ref["bytes"] or hashlib.sha256(blob).hexdigest() != ref["sha256"]:
            raise ValueError(f"{pkg_dir}/{ref['file']} does not match its length or SHA-256 in the manifest")
        out.append(safetensors_io.parse(blob)[0])
    return tuple(out)
