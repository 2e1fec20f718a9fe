"""The explicit msgpack <-> numpy codec: round trips, and refusal of anything that is not a plain array."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from robo4d.serve.msgpack_numpy import CodecError, packb, unpackb


@pytest.mark.parametrize("dtype", ["uint8", "bool", "int64", "float16", "float32", ">f8"])
def test_round_trip_keeps_dtype_shape_and_values(dtype: str) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) % 2 if dtype == "bool" else np.arange(24).reshape(2, 3, 4)).astype(dtype)
    back = unpackb(packb({"a": arr[:, ::2], "n": np.float32(1.5), "s": "x", "nested": [arr]}))
    np.testing.assert_array_equal(back["a"], arr[:, ::2])  # non-contiguous views travel too
    assert back["a"].dtype == np.dtype(dtype).newbyteorder("=") and back["a"].flags.writeable
    assert back["n"] == 1.5 and back["s"] == "x" and back["nested"][0].shape == (2, 3, 4)


def test_openpi_style_map_decodes() -> None:
    raw = msgpack.packb({"__ndarray__": np.ones(3, "<f4").tobytes(), "dtype": "<f4", "shape": (3,)}, use_bin_type=True)
    np.testing.assert_array_equal(unpackb(raw), np.ones(3, np.float32))


def test_object_arrays_are_refused_on_both_ends() -> None:
    with pytest.raises(CodecError, match="dtype object"):
        packb(np.array([{}], dtype=object))
    raw = msgpack.packb({"__ndarray__": b"\x00" * 8, "dtype": "|O", "shape": [1]}, use_bin_type=True)
    with pytest.raises(CodecError, match="dtype"):
        unpackb(raw)


@pytest.mark.parametrize(
    ("array_map", "match"),
    [
        ({"__ndarray__": b"\x00" * 7, "dtype": "<f4", "shape": [2]}, "needs 8 bytes, got 7"),
        ({"__ndarray__": b"\x00" * 8, "dtype": "<f4", "shape": [-2]}, "non-negative"),
        ({"__ndarray__": b"\x00" * 8, "dtype": "not-a-dtype", "shape": [2]}, "dtype"),
        ({"__ndarray__": "text", "dtype": "<f4", "shape": [2]}, "expected bytes"),
    ],
)
def test_bad_array_maps_raise_codec_error(array_map: dict, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        unpackb(msgpack.packb(array_map, use_bin_type=True))


def test_garbage_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="malformed"):
        unpackb(b"\xc1\xff\x00garbage")
