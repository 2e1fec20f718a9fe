"""One declared dataset feature, its info.json form, and the numpy <-> Arrow conversion of its columns.

Storage follows what Hugging Face `datasets` writes for LeRobot, so either side reads the other's files:
shape (1,) is a plain scalar column (`Value`), a 1-D shape a fixed-size list (`Sequence(length=N)`), and
2-D or more nested variable lists (`Array2D`/`Array3D`). Videos live in mp4 files, not in the parquet.
Depth (`uint16`, names ("height", "width")) is stored as integer millimetres and handed out as float32
metres, so it survives the round trip exactly to 1 mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from robo4d.data.errors import DatasetError
from robo4d.types import DEPTH_SCALE_M

DTYPES = ("float32", "float64", "int64", "bool", "uint16", "video", "string")
_NUMPY = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_, "uint16": np.uint16}
DEPTH_NAMES = ("height", "width")
VIDEO_NAMES = ("height", "width", "channels")
_DEPTH_MAX_M = np.iinfo(np.uint16).max * DEPTH_SCALE_M  # 65.535 m: the largest storable depth


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One entry of info.json's `features`."""

    dtype: str  # one of DTYPES
    # Per-frame shape. Scalars are (1,) as in LeRobot; () is accepted and stored as (1,).
    shape: tuple[int, ...]
    # Axis or channel names: a tuple of strings, LeRobot's older {"axis": [...]} form, or None.
    names: tuple[str, ...] | dict[str, Any] | None = None
    # Videos only: the info.json "info" block (video.height, video.codec, ...); the writer fills it in.
    info: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise DatasetError(f"feature dtype {self.dtype!r} is not supported; expected one of {DTYPES}")
        shape = tuple(self.shape) if self.shape else (1,)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise DatasetError(f"feature shape must be positive ints, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        if isinstance(self.names, list):
            object.__setattr__(self, "names", tuple(self.names))
        if self.dtype == "video" and (len(shape) != 3 or shape[2] != 3):
            raise DatasetError(f"a video feature has shape (height, width, 3), got {shape}")

    @property
    def is_video(self) -> bool:
        return self.dtype == "video"

    @property
    def is_depth(self) -> bool:
        """uint16 millimetre depth maps, read back as float32 metres."""
        return self.dtype == "uint16" and self.names == DEPTH_NAMES

    @property
    def is_scalar(self) -> bool:
        return self.shape == (1,)

    @property
    def numpy_dtype(self) -> np.dtype:
        """The dtype readers return (float32 for depth, uint8 for video)."""
        if self.is_depth:
            return np.dtype(np.float32)
        if self.is_video:
            return np.dtype(np.uint8)
        if self.dtype == "string":
            return np.dtype(object)
        return np.dtype(_NUMPY[self.dtype])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame as readers return it: scalars become 0-d, so an episode is (T,)."""
        return () if self.is_scalar else self.shape

    def to_info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape), "names": _names_to_json(self.names)}
        if self.info is not None:
            out["info"] = dict(self.info)
        return out

    @classmethod
    def from_info(cls, data: Any, *, where: str) -> Feature:
        """Parse one info.json feature entry; `where` (e.g. 'meta/info.json features["action"]') prefixes errors."""
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: expected an object, got {data!r}")
        for field in ("dtype", "shape"):
            if field not in data:
                raise DatasetError(f"{where}: missing field {field!r}")
        dtype, shape, names, info = data["dtype"], data["shape"], data.get("names"), data.get("info")
        if dtype not in DTYPES:
            raise DatasetError(f"{where}: field 'dtype' is {dtype!r}; robo4d reads only {DTYPES}")
        if not isinstance(shape, list | tuple) or not all(isinstance(d, int) and d > 0 for d in shape):
            raise DatasetError(f"{where}: field 'shape' must be a list of positive ints, got {shape!r}")
        if names is not None and not isinstance(names, list | dict):
            raise DatasetError(f"{where}: field 'names' must be a list, an object or null, got {names!r}")
        if info is not None and not isinstance(info, dict):
            raise DatasetError(f"{where}: field 'info' must be an object, got {info!r}")
        try:
            return cls(dtype=dtype, shape=tuple(shape), names=names, info=info)
        except DatasetError as e:
            raise DatasetError(f"{where}: {e}") from e

    # -- validation of writer input ------------------------------------------------------------------

    def check_values(self, values: Any, *, key: str, where: str) -> np.ndarray:
        """Validate one episode's (T, ...) values against this declaration; returns them in the stored dtype.

        `where` names the episode (e.g. 'episode 3'). Raises naming the key, the episode and, for
        non-finite numbers, the first bad frame.
        """
        arr = np.asarray(values)
        if arr.ndim == 0:
            raise DatasetError(f"{where}: {key!r} must have a leading time axis, got a scalar")
        want = (arr.shape[0], *self.frame_shape)
        if self.is_scalar and arr.shape == (arr.shape[0], 1):
            arr = arr[:, 0]
        if arr.shape != want:
            raise DatasetError(
                f"{where}: {key!r} has shape {arr.shape}, declared per-frame shape {self.shape} so expected {want}"
            )
        kind = arr.dtype.kind
        if self.is_video:
            if arr.dtype != np.uint8:
                raise DatasetError(f"{where}: {key!r} is a video and must be uint8 RGB, got {arr.dtype}")
            return arr
        if self.dtype == "string":
            if kind not in "UO" or not all(isinstance(v, str) for v in arr.ravel()):
                raise DatasetError(f"{where}: {key!r} is declared string, got {arr.dtype}")
            return arr
        if self.dtype == "bool":
            if kind != "b":
                raise DatasetError(f"{where}: {key!r} is declared bool, got {arr.dtype}")
            return arr
        if self.is_depth or self.dtype.startswith("float"):
            if kind != "f":
                raise DatasetError(
                    f"{where}: {key!r} is declared {self.dtype}"
                    f"{' (depth, given in metres)' if self.is_depth else ''} "
                    f"and needs floating-point values, got {arr.dtype}"
                )
            _check_finite(arr, key=key, where=where)
            return encode_depth(arr, key=key, where=where) if self.is_depth else arr.astype(_NUMPY[self.dtype])
        if kind not in "iu":
            raise DatasetError(f"{where}: {key!r} is declared {self.dtype} and needs integers, got {arr.dtype}")
        info = np.iinfo(_NUMPY[self.dtype])
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise DatasetError(f"{where}: {key!r} has values outside the {self.dtype} range")
        return arr.astype(_NUMPY[self.dtype])

    # -- Arrow conversion ----------------------------------------------------------------------------

    def to_arrow(self, values: np.ndarray) -> pa.Array:
        """(T, *shape) stored-dtype values -> one Arrow column (no per-element Python work)."""
        if self.is_video:
            raise DatasetError("video features are stored in mp4 files, not in parquet")
        if self.dtype == "string":
            return pa.array(values.reshape(-1).tolist(), type=pa.string())
        flat = pa.array(np.ascontiguousarray(values).reshape(-1))
        if self.is_scalar:
            return flat
        if len(self.shape) == 1:
            return pa.FixedSizeListArray.from_arrays(flat, self.shape[0])
        arr: pa.Array = flat
        n = flat.__len__()
        for dim in reversed(self.shape):  # innermost axis first; each level groups `dim` children
            arr = pa.ListArray.from_arrays(pa.array(np.arange(0, n + 1, dim, dtype=np.int32)), arr)
            n //= dim
        return arr

    def from_arrow(self, column: pa.Array | pa.ChunkedArray, *, key: str, where: str) -> np.ndarray:
        """One Arrow column -> (T, *frame_shape) numpy in the reader's dtype (depth in metres).

        Accepts any mix of list / large_list / fixed_size_list nesting; every list must have exactly the
        declared length, else the error names `where` (the file), the key and the shapes.
        """
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        rows = len(arr)
        if arr.null_count:
            raise DatasetError(f"{where}: column {key!r} has {arr.null_count} null value(s)")
        dims = self.shape if (self.is_scalar and _is_list(arr.type)) or not self.is_scalar else ()
        for level, dim in enumerate(dims):
            if not _is_list(arr.type):
                raise DatasetError(
                    f"{where}: column {key!r} is nested {level} deep but the declared shape "
                    f"{self.shape} needs {len(dims)} list levels (type {column.type})"
                )
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            if lengths.size and (lengths.min() != dim or lengths.max() != dim):
                bad = int(np.flatnonzero(lengths != dim)[0])
                raise DatasetError(
                    f"{where}: column {key!r} has a list of length {int(lengths[bad])} at axis "
                    f"{level} (row {bad}); the declared shape {self.shape} needs {dim}"
                )
            arr = arr.flatten()
        if _is_list(arr.type):
            raise DatasetError(f"{where}: column {key!r} is nested deeper than its declared shape {self.shape}")
        if self.dtype == "string":
            return np.asarray(arr.to_pylist(), dtype=object).reshape(rows, *self.frame_shape)
        stored = _NUMPY[self.dtype]
        values = arr.to_numpy(zero_copy_only=False)
        if values.dtype != stored:
            raise DatasetError(f"{where}: column {key!r} holds {arr.type}, declared {self.dtype}")
        values = values.reshape(rows, *self.frame_shape)
        return decode_depth(values) if self.is_depth else values

    def arrow_matches(self, type_: pa.DataType) -> str | None:
        """Why a parquet column type cannot hold this feature (nesting or fixed sizes), or None if it can."""
        dims = self.shape if not self.is_scalar or _is_list(type_) else ()
        for level, dim in enumerate(dims):
            if not _is_list(type_):
                return f"type {type_} is nested {level} deep, the declared shape {self.shape} needs {len(dims)}"
            if pa.types.is_fixed_size_list(type_) and type_.list_size != dim:
                return f"type {type_} has fixed size {type_.list_size} at axis {level}, declared {self.shape}"
            type_ = type_.value_type
        if _is_list(type_):
            return f"nested deeper than the declared shape {self.shape}"
        want = pa.string() if self.dtype == "string" else pa.from_numpy_dtype(np.dtype(_NUMPY[self.dtype]))
        if type_ != want and not (self.dtype == "string" and type_ == pa.large_string()):
            return f"values are {type_}, declared {self.dtype}"
        return None


def encode_depth(metres: np.ndarray, *, key: str, where: str) -> np.ndarray:
    """float metres -> uint16 millimetres (round to nearest); out-of-range depth is an error, never clipped."""
    if metres.size and (metres.min() < 0 or metres.max() > _DEPTH_MAX_M):
        raise DatasetError(
            f"{where}: depth {key!r} ranges over [{metres.min():.4g}, {metres.max():.4g}] m; "
            f"storable depth is [0, {_DEPTH_MAX_M}] m"
        )
    return np.rint(metres / DEPTH_SCALE_M).astype(np.uint16)


def decode_depth(millimetres: np.ndarray) -> np.ndarray:
    return millimetres.astype(np.float32) * np.float32(DEPTH_SCALE_M)


def _check_finite(arr: np.ndarray, *, key: str, where: str) -> None:
    finite = np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1)  # (T,)
    if not finite.all():
        frame = int(np.flatnonzero(~finite)[0])
        raise DatasetError(f"{where}: {key!r} has NaN or inf at frame {frame}")


def _is_list(type_: pa.DataType) -> bool:
    return pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_)


def _names_to_json(names: tuple[str, ...] | dict[str, Any] | None) -> list[str] | dict[str, Any] | None:
    return list(names) if isinstance(names, tuple) else names


def features_to_info(features: dict[str, Feature]) -> dict[str, Any]:
    return {key: feature.to_info() for key, feature in features.items()}
