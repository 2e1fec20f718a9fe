"""msgpack with numpy arrays, encoded explicitly (no pickle), shared by the server and the robot-side client.

An array travels as a map `{"__ndarray__": raw bytes, "dtype": "<f4", "shape": [H, W, 3]}` — the same
layout openpi's clients use, so either side can talk to the other. Decoding trusts nothing: the dtype must
be a plain numeric/bool type from an allow-list (never `object`, which would need pickle), the shape must be
a list of non-negative ints, and the byte count must match; anything else raises `CodecError`.
Imports only numpy and msgpack so a robot computer needs no torch.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

NDARRAY = "__ndarray__"  # map key holding an array's raw bytes
DTYPE = "dtype"  # numpy dtype string, e.g. "<f4", "|u1"
SHAPE = "shape"  # list of ints

# Fixed-size numeric types only: their bytes mean the same on every machine once the byte order is fixed.
_ALLOWED_KINDS = frozenset("biuf")  # bool, signed int, unsigned int, float


class CodecError(ValueError):
    """A frame that is not valid msgpack, or an array map that does not describe a plain numeric array."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise CodecError(f"cannot encode array of dtype {obj.dtype} (expected bool, int, uint or float)")
        # Little-endian on the wire whatever the host is; the dtype string records it.
        arr = np.ascontiguousarray(obj, dtype=obj.dtype.newbyteorder("<") if obj.dtype.itemsize > 1 else obj.dtype)
        return {NDARRAY: arr.tobytes(), DTYPE: arr.dtype.str, SHAPE: list(arr.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise CodecError(f"cannot encode object of type {type(obj).__name__}")


def _decode(obj: dict[Any, Any]) -> Any:
    if NDARRAY not in obj:
        return obj
    data, dtype_str, shape = obj.get(NDARRAY), obj.get(DTYPE), obj.get(SHAPE)
    if not isinstance(data, bytes):
        raise CodecError(f"array field {NDARRAY!r}: expected bytes, got {type(data).__name__}")
    try:
        dtype = np.dtype(dtype_str) if isinstance(dtype_str, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise CodecError(f"array field {DTYPE!r}: {dtype_str!r} is not a bool/int/uint/float dtype string")
    if not isinstance(shape, list | tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise CodecError(f"array field {SHAPE!r}: expected a list of non-negative ints, got {shape!r}")
    count = int(np.prod(shape, dtype=np.int64))
    if count * dtype.itemsize != len(data):
        raise CodecError(
            f"array of shape {list(shape)} and dtype {dtype.str} needs {count * dtype.itemsize} bytes, got {len(data)}"
        )
    # Copy: frombuffer views the message's immutable bytes, and callers expect writable arrays.
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)


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
