"""Read and write safetensors files (https://github.com/huggingface/safetensors#format) with numpy only.

Debian 12 has no python3-safetensors. Format: 8-byte little-endian header length n, n bytes of JSON
{"<name>": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the tensor
bytes, contiguous, little-endian, in the order written. Offsets are relative to the end of the header.
The header is padded with spaces so the data starts 8-byte aligned (the reference implementation does too).
"""

import json
import struct

import numpy as np

DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
_NAMES = {(np.dtype(v).kind, np.dtype(v).itemsize): k for k, v in DTYPES.items()}


def _as_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):  # torch tensor
        t = t.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(t)


def serialize(tensors: dict, metadata: dict = None) -> bytes:
    """Tensors (numpy arrays or torch tensors) in insertion order -> safetensors bytes."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        a = _as_numpy(t)
        key = (a.dtype.kind, a.dtype.itemsize)
        if key not in _NAMES:
            raise TypeError(f"tensor {name!r}: dtype {a.dtype} has no safetensors name")
        raw = a.astype(np.dtype(DTYPES[_NAMES[key]]), copy=False).tobytes()  # little-endian
        header[name] = {"dtype": _NAMES[key], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - (8 + len(js)) % 8) % 8)
    return struct.pack("<Q", len(js)) + js + b"".join(chunks)


def write(path: str, tensors: dict, metadata: dict = None) -> bytes:
    """Write the file; returns its bytes (for the manifest's length and SHA-256)."""
    blob = serialize(tensors, metadata)
    with open(path, "wb") as f:
        f.write(blob)
    return blob


def parse(blob: bytes) -> tuple:
    """safetensors bytes -> (dict name -> numpy array in file order, metadata dict)."""
    if len(blob) < 8:
        raise ValueError("not a safetensors file: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"safetensors header length {n} runs past the end of the file")
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n :]
    out, end = {}, 0
    for name, h in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = h["data_offsets"]
        if b != end:
            raise ValueError(f"tensor {name!r} starts at {b}, expected {end} (holes are not allowed)")
        dt = np.dtype(DTYPES[h["dtype"]])
        if e - b != dt.itemsize * int(np.prod(h["shape"], dtype=np.int64)):
            raise ValueError(f"tensor {name!r}: {e - b} bytes do not match {h['dtype']}{h['shape']}")
        out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(h["shape"])
        end = e
    if end != len(data):
        raise ValueError(f"{len(data) - end} bytes after the last tensor")
    return out, meta


def read(path: str) -> tuple:
    with open(path, "rb") as f:
        return parse(f.read())
