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


def test_arrays_and_scalars_use_openpi_layout_and_old_robo4d_maps_still_decode() -> None:
    raw = msgpack.unpackb(packb({"a": np.ones(3, np.float32), "n": np.int16(-3)}), raw=False)
    assert raw["a"] == {b"__ndarray__": True, b"data": np.ones(3, "<f4").tobytes(), b"dtype": "<f4", b"shape": [3]}
    assert raw["n"] == {b"__npgeneric__": True, b"data": -3, b"dtype": "<i2"}
    old = msgpack.packb({"__ndarray__": np.ones(3, "<f4").tobytes(), "dtype": "<f4", "shape": (3,)}, use_bin_type=True)
    np.testing.assert_array_equal(unpackb(old), np.ones(3, np.float32))


def test_frames_cross_with_the_real_openpi_codec() -> None:
    from openpi_client import msgpack_numpy as openpi  # the released package, a dev dependency

    obs = {"img": np.arange(12, dtype=np.uint8).reshape(2, 2, 3), "x": np.float32(0.25), "b": np.bool_(True)}
    ours = unpackb(openpi.packb(obs))
    np.testing.assert_array_equal(ours["img"], obs["img"])
    assert ours["x"].dtype == np.float32 and ours["x"] == 0.25 and ours["b"].dtype == np.bool_ and ours["b"]
    theirs = openpi.unpackb(packb(obs))
    np.testing.assert_array_equal(theirs["img"], obs["img"])
    assert theirs["x"] == np.float32(0.25) and theirs["b"] == np.bool_(True)


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
        ({b"__ndarray__": True, b"data": b"\x00" * 4, b"dtype": "<f4", b"shape": "x"}, "non-negative"),
        ({b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "|O", b"shape": [1]}, "dtype"),
        ({b"__npgeneric__": True, b"data": "1", b"dtype": "<f4"}, "expected float"),
        ({b"__npgeneric__": True, b"data": 300, b"dtype": "|u1"}, "does not fit"),
        ({b"__npgeneric__": True, b"data": 1, b"dtype": "|V4"}, "dtype"),
    ],
)
def test_bad_array_maps_raise_codec_error(array_map: dict, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        unpackb(msgpack.packb(array_map, use_bin_type=True))


def test_garbage_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="malformed"):
        unpackb(b"\xc1\xff\x00garbage")
