"""safetensors with numpy: every dtype round-trips in order, files read back, malformed bytes are refused."""

import json
import struct

import numpy as np
import pytest
import torch

from training import safetensors_io


def test_safetensors_round_trips_every_dtype_and_keeps_tensor_order():
    tensors = {
        "b": np.arange(6, dtype=np.float32).reshape(2, 3),
        "a": np.array([-128, 127], np.int8),
        "c": np.array([1, 2], np.int64),
        "d": np.zeros(0, np.float32),
    }
    back, meta = safetensors_io.parse(safetensors_io.serialize(tensors, {"format": "x"}))
    assert list(back) == ["b", "a", "c", "d"] and meta == {"format": "x"}
    for k in tensors:
        assert back[k].dtype == tensors[k].dtype and np.array_equal(back[k], tensors[k])
    blob = safetensors_io.serialize(tensors)
    assert (8 + int.from_bytes(blob[:8], "little")) % 8 == 0  # data starts 8-byte aligned


def test_a_file_written_reads_back_with_torch_tensors_accepted(tmp_path):
    path = str(tmp_path / "w.safetensors")
    blob = safetensors_io.write(path, {"w": torch.arange(4, dtype=torch.int16)}, {"id": 7})
    assert open(path, "rb").read() == blob
    back, meta = safetensors_io.read(path)
    assert back["w"].tolist() == [0, 1, 2, 3] and back["w"].dtype == np.int16 and meta == {"id": "7"}


def header_blob(header: dict, data: bytes) -> bytes:
    js = json.dumps(header).encode()
    return struct.pack("<Q", len(js)) + js + data


def test_malformed_files_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="shorter than 8 bytes"):
        safetensors_io.parse(b"abc")
    with pytest.raises(ValueError, match="runs past the end"):
        safetensors_io.parse(struct.pack("<Q", 100) + b"{}")
    hole = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}
    with pytest.raises(ValueError, match="holes are not allowed"):
        safetensors_io.parse(header_blob(hole, bytes(8)))
    short = {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}
    with pytest.raises(ValueError, match="do not match F32"):
        safetensors_io.parse(header_blob(short, bytes(8)))
    with pytest.raises(TypeError, match="has no safetensors name"):
        safetensors_io.serialize({"c": np.zeros(2, np.complex64)})
