"""LeRobot's on-disk layout: path templates, metadata column names and small JSON/marker helpers.

Every name here is spelled exactly as LeRobot writes it (v3.0 and, for reading, v2.1), so datasets move
between the two code bases. Dataset feature keys live in `robo4d.types`; these are file-level names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robo4d.data.errors import DatasetError

V21 = "v2.1"  # the previous layout: one parquet and one mp4 per episode; read-only support

# v3.0 path templates (info.json carries them too; a dataset's own templates win when reading).
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_DIR = "meta/episodes"

# v2.1 metadata files.
V21_EPISODES_JSONL = "meta/episodes.jsonl"
V21_TASKS_JSONL = "meta/tasks.jsonl"
V21_EPISODES_STATS_JSONL = "meta/episodes_stats.jsonl"

# Written into a dataset directory while it is being built or edited; a reader refuses a dataset holding it.
INCOMPLETE_MARKER = ".robo4d-incomplete"

# Defaults of LeRobot's writer.
DEFAULT_CHUNKS_SIZE = 1000  # files per chunk directory
DEFAULT_DATA_FILES_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILES_SIZE_IN_MB = 500

# Columns of meta/episodes/*.parquet.
EP_INDEX = "episode_index"
EP_TASKS = "tasks"
EP_LENGTH = "length"
EP_DATA_CHUNK = "data/chunk_index"
EP_DATA_FILE = "data/file_index"
EP_FROM_INDEX = "dataset_from_index"
EP_TO_INDEX = "dataset_to_index"
EP_META_CHUNK = "meta/episodes/chunk_index"
EP_META_FILE = "meta/episodes/file_index"
EP_STATS_PREFIX = "stats/"

# Columns of meta/tasks.parquet (pandas writes the index "task" as a column plus pandas metadata).
TASK_COLUMN = "task"


def ep_video_chunk(key: str) -> str:
    return f"videos/{key}/chunk_index"


def ep_video_file(key: str) -> str:
    return f"videos/{key}/file_index"


def ep_video_from(key: str) -> str:
    return f"videos/{key}/from_timestamp"


def ep_video_to(key: str) -> str:
    return f"videos/{key}/to_timestamp"


def ep_stats_column(key: str, stat: str) -> str:
    return f"{EP_STATS_PREFIX}{key}/{stat}"


def next_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """LeRobot's rule: files are numbered within a chunk directory until it holds `chunks_size` of them."""
    if file_index + 1 >= chunks_size:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from e


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing")
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:{line_no}: not valid JSON ({e})") from e
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def write_json(path: Path, data: Any) -> None:
    """Deterministic JSON (insertion order, fixed indent) so identical inputs give identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n")


def require(mapping: dict[str, Any], field: str, kind: type | tuple[type, ...], where: str) -> Any:
    """`mapping[field]`, raising a DatasetError naming `where` and the field if it is absent or mistyped."""
    if not isinstance(mapping, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(mapping).__name__}")
    if field not in mapping:
        raise DatasetError(f"{where}: missing field {field!r}")
    value = mapping[field]
    # bool is an int subclass; a JSON true where a number is expected is a mistake worth reporting.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise DatasetError(f"{where}: field {field!r} must be {_kind_name(kind)}, got {value!r}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))
