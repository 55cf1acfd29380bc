"""Pickle-free transport of JSON values with numpy arrays anywhere inside.

Wire format (all integers little-endian)::

    b"SBX1" | u32 json_len | json | raw array bytes, concatenated

The JSON document is the value with every ``numpy.ndarray`` replaced by
``{"__sbx_nd__": [index, dtype_str, shape, offset, nbytes]}``. Only plain numeric and
bool dtypes cross (no object, no structured, no strings), so decoding never runs code.
NaN and +-inf are kept (Python's JSON extension tokens), tuples become lists, numpy
scalars become Python numbers. Anything else is refused with ``CodecError``.
"""
from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

MAGIC = b"SBX1"
_ND = "__sbx_nd__"
_ESC = "__sbx_esc__"  # wraps a user dict that happens to use one of our marker keys
_KINDS = "biufc"  # bool, int, uint, float, complex
MAX_DEPTH = 64


class CodecError(ValueError):
    pass


def encode(value: Any) -> bytes:
    blobs: list[bytes] = []
    offset = [0]

    def walk(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CodecError("value nested too deeply")
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v)
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in _KINDS or v.dtype.fields is not None:
                raise CodecError(f"array dtype {v.dtype} cannot be transported")
            a = np.ascontiguousarray(v)
            raw = a.tobytes()
            entry = [len(blobs), a.dtype.str, list(a.shape), offset[0], len(raw)]
            blobs.append(raw)
            offset[0] += len(raw)
            return {_ND: entry}
        if isinstance(v, np.generic):
            if v.dtype.kind not in _KINDS:
                raise CodecError(f"numpy scalar of dtype {v.dtype} cannot be transported")
            item = v.item()
            if isinstance(item, complex):
                return walk(np.asarray(v), depth + 1)
            return item
        if isinstance(v, (list, tuple)):
            return [walk(x, depth + 1) for x in v]
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    raise CodecError(f"dict key {k!r} is not a string")
                out[k] = walk(x, depth + 1)
            if _ND in out or _ESC in out:
                return {_ESC: out}
            return out
        raise CodecError(f"value of type {type(v).__name__} cannot be transported")

    doc = json.dumps(walk(value, 0), allow_nan=True, separators=(",", ":")).encode()
    return b"".join([MAGIC, struct.pack("<I", len(doc)), doc, *blobs])


def decode(data: bytes | memoryview) -> Any:
    data = memoryview(data)
    if len(data) < 8 or bytes(data[:4]) != MAGIC:
        raise CodecError("bad magic")
    (jlen,) = struct.unpack("<I", data[4:8])
    if 8 + jlen > len(data):
        raise CodecError("truncated document")
    try:
        doc = json.loads(bytes(data[8 : 8 + jlen]))
    except ValueError as e:
        raise CodecError(f"bad json: {e}") from None
    blob = data[8 + jlen :]

    def walk(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CodecError("value nested too deeply")
        if isinstance(v, list):
            return [walk(x, depth + 1) for x in v]
        if isinstance(v, dict):
            if len(v) == 1 and _ND in v:
                return _array(v[_ND])
            if len(v) == 1 and _ESC in v and isinstance(v[_ESC], dict):
                return {k: walk(x, depth + 1) for k, x in v[_ESC].items()}
            return {k: walk(x, depth + 1) for k, x in v.items()}
        return v

    def _array(entry: Any) -> np.ndarray:
        try:
            _, dstr, shape, off, nbytes = entry
            dt = np.dtype(str(dstr))
            shape = tuple(int(s) for s in shape)
            off, nbytes = int(off), int(nbytes)
        except Exception:
            raise CodecError("bad array entry") from None
        if dt.kind not in _KINDS or dt.fields is not None or dt.hasobject:
            raise CodecError(f"array dtype {dt} refused")
        if any(s < 0 for s in shape) or off < 0 or off + nbytes > len(blob):
            raise CodecError("array bounds out of range")
        count = 1
        for s in shape:
            count *= s
        if count * dt.itemsize != nbytes:
            raise CodecError("array size mismatch")
        return np.frombuffer(blob[off : off + nbytes], dtype=dt).reshape(shape).copy()

    return walk(doc, 0)
