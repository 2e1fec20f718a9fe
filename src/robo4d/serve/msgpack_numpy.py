"""msgpack with numpy arrays, encoded explicitly (no pickle), shared by the server and the robot-side client.

Wire layout is openpi's (`openpi_client.msgpack_numpy`), so its clients and ours both talk to `robo4d serve`:
    array          {b"__ndarray__": True, b"data": raw bytes, b"dtype": "<f4", b"shape": [H, W, 3]}
    numpy scalar   {b"__npgeneric__": True, b"data": 1.5, b"dtype": "<f4"}
(the keys are msgpack *bin* strings, which is how openpi's `packb` writes Python `bytes`). robo4d 0.1's own
layout `{"__ndarray__": raw bytes, "dtype": ..., "shape": ...}` (str keys) is still read, so older clients
keep working. Decoding trusts nothing: the dtype must be a plain numeric/bool type from an allow-list (never
`object`, which would need pickle), the shape must be a list of non-negative ints, and the byte count must
match; anything else raises `CodecError`. Imports only numpy and msgpack so a robot computer needs no torch.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

NDARRAY = b"__ndarray__"  # marks an array map (value True)
NPGENERIC = b"__npgeneric__"  # marks a numpy scalar map (value True)
DATA = b"data"  # an array's raw bytes, or a scalar's Python value
DTYPE = b"dtype"  # numpy dtype string, e.g. "<f4", "|u1"
SHAPE = b"shape"  # list of ints
_OLD_NDARRAY = "__ndarray__"  # robo4d 0.1: str keys, the bytes under "__ndarray__" itself

# Fixed-size numeric types only: their bytes mean the same on every machine once the byte order is fixed.
_ALLOWED_KINDS = frozenset("biuf")  # bool, signed int, unsigned int, float


class CodecError(ValueError):
    """A frame that is not valid msgpack, or an array map that does not describe a plain numeric array."""


def _wire_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind not in _ALLOWED_KINDS:
        raise CodecError(f"cannot encode dtype {dtype} (expected bool, int, uint or float)")
    # Little-endian on the wire whatever the host is; the dtype string records it.
    return dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj, dtype=_wire_dtype(obj.dtype))
        return {NDARRAY: True, DATA: arr.tobytes(), DTYPE: arr.dtype.str, SHAPE: list(arr.shape)}
    if isinstance(obj, np.generic):
        return {NPGENERIC: True, DATA: obj.item(), DTYPE: _wire_dtype(obj.dtype).str}
    raise CodecError(f"cannot encode object of type {type(obj).__name__}")


def _dtype(dtype_str: Any, field: str) -> np.dtype:
    try:
        dtype = np.dtype(dtype_str) if isinstance(dtype_str, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise CodecError(f"{field} field 'dtype': {dtype_str!r} is not a bool/int/uint/float dtype string")
    return dtype


def _array(data: Any, dtype_str: Any, shape: Any) -> np.ndarray:
    if not isinstance(data, bytes):
        raise CodecError(f"array field 'data': expected bytes, got {type(data).__name__}")
    dtype = _dtype(dtype_str, "array")
    if not isinstance(shape, list | tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise CodecError(f"array field 'shape': expected a list of non-negative ints, got {shape!r}")
    count = int(np.prod(shape, dtype=np.int64))
    if count * dtype.itemsize != len(data):
        raise CodecError(
            f"array of shape {list(shape)} and dtype {dtype.str} needs {count * dtype.itemsize} bytes, got {len(data)}"
        )
    # Copy: frombuffer views the message's immutable bytes, and callers expect writable arrays.
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def _scalar(data: Any, dtype_str: Any) -> np.generic:
    dtype = _dtype(dtype_str, "scalar")
    wanted = {"b": (bool,), "i": (int,), "u": (int,), "f": (int, float)}[dtype.kind]
    if not isinstance(data, wanted) or (dtype.kind != "b" and isinstance(data, bool)):
        raise CodecError(f"scalar field 'data': expected {wanted[-1].__name__} for dtype {dtype.str}, got {data!r}")
    try:
        return dtype.newbyteorder("=").type(data)
    except (OverflowError, ValueError) as e:
        raise CodecError(f"scalar field 'data': {data!r} does not fit dtype {dtype.str}") from e


def _decode(obj: dict[Any, Any]) -> Any:
    if obj.get(NDARRAY) is True:
        return _array(obj.get(DATA), obj.get(DTYPE), obj.get(SHAPE))
    if obj.get(NPGENERIC) is True:
        return _scalar(obj.get(DATA), obj.get(DTYPE))
    if _OLD_NDARRAY in obj:
        return _array(obj.get(_OLD_NDARRAY), obj.get("dtype"), obj.get("shape"))
    return obj


def packb(obj: Any) -> bytes:
    """Serialise dicts/lists/scalars/strings/bytes and numpy arrays to one msgpack frame."""
    return msgpack.packb(obj, default=_encode, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """Parse one msgpack frame, rebuilding numpy arrays; raises `CodecError` on anything malformed."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected a binary frame, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=False)
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise CodecError(f"malformed msgpack frame: {e}") from e
