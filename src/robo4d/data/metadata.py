"""Load and validate a dataset's metadata (LeRobot v3.0, or v2.1) into one in-memory episode index.

Both versions become the same `Metadata`: per episode its length, global index range, data file and row
offset within it, and per video key the file and start time. Every problem raises `DatasetError` naming the
file, the field and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robo4d import types
from robo4d.data import layout
from robo4d.data.errors import DatasetError
from robo4d.data.features import Feature
from robo4d.data.stats import Stats, aggregate, stats_from_json

SUPPORTED_VERSIONS = (types.CODEBASE_VERSION, layout.V21)


@dataclass(frozen=True, kw_only=True)
class Metadata:
    root: Path
    info: dict[str, Any]  # meta/info.json as parsed
    version: str  # codebase_version
    fps: int
    features: dict[str, Feature]
    tasks: list[str]  # task_index -> task
    length: np.ndarray  # (E,) int64 frames per episode
    from_index: np.ndarray  # (E,) int64 global index of each episode's first frame
    data_file: list[Path]  # (E,) absolute parquet path per episode
    row_offset: np.ndarray  # (E,) int64 first row of the episode within its data file
    video_file: dict[str, list[Path]]  # video key -> (E,) absolute mp4 path per episode
    video_from: dict[str, np.ndarray]  # video key -> (E,) float64 episode start time within its mp4
    episode_tasks: list[list[str]]  # (E,) the tasks of each episode
    episode_rows: list[dict[str, Any]]  # (E,) episode metadata columns other than stats
    stats: dict[str, Stats]
    robo4d_meta: dict[str, Any]


def load_metadata(root: Path, *, check_videos: bool = True) -> Metadata:
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset directory does not exist")
    if (root / layout.INCOMPLETE_MARKER).exists():
        raise DatasetError(
            f"{root}: unfinished dataset ({layout.INCOMPLETE_MARKER} present): its writer or "
            f"editor never finished; regenerate it"
        )
    info_path = root / types.INFO_JSON
    info = layout.read_json(info_path)
    version = layout.require(info, "codebase_version", str, str(info_path))
    if version not in SUPPORTED_VERSIONS:
        raise DatasetError(f"{info_path}: field 'codebase_version' is {version!r}; robo4d reads {SUPPORTED_VERSIONS}")
    fps = layout.require(info, "fps", int, str(info_path))
    if fps <= 0:
        raise DatasetError(f"{info_path}: field 'fps' must be positive, got {fps}")
    raw_features = layout.require(info, "features", dict, str(info_path))
    features = {key: Feature.from_info(ft, where=f"{info_path} features[{key!r}]") for key, ft in raw_features.items()}
    for key in (types.EPISODE_INDEX, types.INDEX):
        if key not in features:
            raise DatasetError(f"{info_path}: features lack LeRobot's standard column {key!r}")
    total_episodes = layout.require(info, "total_episodes", int, str(info_path))
    total_frames = layout.require(info, "total_frames", int, str(info_path))
    data_path = layout.require(info, "data_path", str, str(info_path))
    video_keys = [k for k, f in features.items() if f.is_video]
    video_path = layout.require(info, "video_path", str, str(info_path)) if video_keys else None
    if version == layout.V21:
        parts = _load_v21(root, info, data_path, video_path, video_keys, total_episodes)
    else:
        parts = _load_v3(root, data_path, video_path, video_keys, total_episodes)
    length = parts["length"]
    if int(length.sum()) != total_frames:
        raise DatasetError(
            f"{info_path}: field 'total_frames' is {total_frames} but the episodes hold {int(length.sum())} frames"
        )
    stats_path = root / types.STATS_JSON
    stats = stats_from_json(layout.read_json(stats_path)) if stats_path.exists() else parts.pop("stats", {})
    parts.pop("stats", None)
    robo4d_path = root / types.ROBO4D_JSON
    robo4d_meta = layout.read_json(robo4d_path) if robo4d_path.exists() else {}
    meta = Metadata(
        root=root, info=info, version=version, fps=fps, features=features, stats=stats, robo4d_meta=robo4d_meta, **parts
    )
    _check_data_files(meta)
    if check_videos:
        _check_video_files(meta)
    return meta


def _load_v3(root: Path, data_path: str, video_path: str | None, video_keys: list[str], total: int) -> dict:
    tasks_path = root / types.TASKS_PARQUET
    tasks_table = _read_parquet(tasks_path)
    _require_columns(tasks_table, tasks_path, [types.TASK_INDEX])
    # pandas stores the DataFrame index "task" as a column (an unnamed index as __index_level_0__).
    task_column = layout.TASK_COLUMN if layout.TASK_COLUMN in tasks_table.column_names else "__index_level_0__"
    _require_columns(tasks_table, tasks_path, [task_column])
    order = np.argsort(tasks_table[types.TASK_INDEX].to_numpy())
    if not np.array_equal(tasks_table[types.TASK_INDEX].to_numpy()[order], np.arange(len(order))):
        raise DatasetError(f"{tasks_path}: column 'task_index' must be 0..{len(order) - 1}")
    tasks = [tasks_table[task_column].to_pylist()[i] for i in order]

    files = sorted((root / layout.EPISODES_DIR).glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{root / layout.EPISODES_DIR}: no episodes parquet files")
    tables = []
    for path in files:
        schema = _read_schema(path)
        columns = [name for name in schema.names if not name.startswith(layout.EP_STATS_PREFIX)]
        tables.append(_read_parquet(path, columns=columns))
    episodes = pa.concat_tables(tables, promote_options="default").combine_chunks()
    where = root / layout.EPISODES_DIR
    needed = [
        layout.EP_INDEX,
        layout.EP_TASKS,
        layout.EP_LENGTH,
        layout.EP_DATA_CHUNK,
        layout.EP_DATA_FILE,
        layout.EP_FROM_INDEX,
        layout.EP_TO_INDEX,
    ]
    for key in video_keys:
        needed += [layout.ep_video_chunk(key), layout.ep_video_file(key), layout.ep_video_from(key)]
    _require_columns(episodes, where, needed)
    episodes = episodes.take(np.argsort(episodes[layout.EP_INDEX].to_numpy(), kind="stable"))
    col = {name: episodes[name].to_numpy() for name in needed if name != layout.EP_TASKS}
    _check_indices(col[layout.EP_INDEX], total, where)
    length = col[layout.EP_LENGTH].astype(np.int64)
    from_index = col[layout.EP_FROM_INDEX].astype(np.int64)
    if np.any(col[layout.EP_TO_INDEX] - from_index != length) or np.any(length <= 0):
        bad = int(np.flatnonzero((col[layout.EP_TO_INDEX] - from_index != length) | (length <= 0))[0])
        raise DatasetError(f"{where}: episode {bad}: dataset_to_index - dataset_from_index != length ({length[bad]})")
    data_file = [
        root / data_path.format(chunk_index=int(c), file_index=int(f))
        for c, f in zip(col[layout.EP_DATA_CHUNK], col[layout.EP_DATA_FILE], strict=True)
    ]
    # Rows of a data file are its episodes back to back, ordered by global index.
    row_offset = np.zeros(len(length), dtype=np.int64)
    for path in set(data_file):
        eps = sorted((i for i, p in enumerate(data_file) if p == path), key=lambda i: from_index[i])
        row_offset[eps] = from_index[eps] - from_index[eps[0]]
        if np.any(from_index[eps[1:]] != from_index[eps[:-1]] + length[eps[:-1]]):
            raise DatasetError(f"{where}: episodes {eps} share {path} but their index ranges are not contiguous")
    video_file = {
        key: [
            root / video_path.format(video_key=key, chunk_index=int(c), file_index=int(f))
            for c, f in zip(col[layout.ep_video_chunk(key)], col[layout.ep_video_file(key)], strict=True)
        ]
        for key in video_keys
    }
    video_from = {key: col[layout.ep_video_from(key)].astype(np.float64) for key in video_keys}
    rows = episodes.to_pylist()
    return dict(
        tasks=tasks,
        length=length,
        from_index=from_index,
        data_file=data_file,
        row_offset=row_offset,
        video_file=video_file,
        video_from=video_from,
        episode_tasks=[r[layout.EP_TASKS] for r in rows],
        episode_rows=rows,
    )


def _load_v21(
    root: Path, info: dict, data_path: str, video_path: str | None, video_keys: list[str], total: int
) -> dict:
    info_path = str(root / types.INFO_JSON)
    chunks_size = layout.require(info, "chunks_size", int, info_path)
    task_rows = layout.read_jsonl(root / layout.V21_TASKS_JSONL)
    tasks_by_index = {}
    for row in task_rows:
        index = layout.require(row, types.TASK_INDEX, int, str(root / layout.V21_TASKS_JSONL))
        tasks_by_index[index] = layout.require(row, layout.TASK_COLUMN, str, str(root / layout.V21_TASKS_JSONL))
    if sorted(tasks_by_index) != list(range(len(tasks_by_index))):
        raise DatasetError(f"{root / layout.V21_TASKS_JSONL}: task_index values must be 0..{len(tasks_by_index) - 1}")
    rows = layout.read_jsonl(root / layout.V21_EPISODES_JSONL)
    where = str(root / layout.V21_EPISODES_JSONL)
    rows.sort(key=lambda r: r.get(layout.EP_INDEX, -1))
    index = np.array([layout.require(r, layout.EP_INDEX, int, where) for r in rows], dtype=np.int64)
    _check_indices(index, total, Path(where))
    length = np.array([layout.require(r, layout.EP_LENGTH, int, where) for r in rows], dtype=np.int64)
    tasks = [layout.require(r, layout.EP_TASKS, list, where) for r in rows]
    from_index = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    chunk = index // chunks_size
    pairs = list(zip(chunk.tolist(), index.tolist(), strict=True))
    data_file = [root / data_path.format(episode_chunk=c, episode_index=e) for c, e in pairs]
    video_file = {
        key: [root / video_path.format(episode_chunk=c, video_key=key, episode_index=e) for c, e in pairs]
        for key in video_keys
    }
    stats_path = root / layout.V21_EPISODES_STATS_JSONL
    stats: dict[str, Stats] = {}
    if stats_path.exists():
        per_episode = [layout.require(r, "stats", dict, str(stats_path)) for r in layout.read_jsonl(stats_path)]
        keys = set.intersection(*(set(s) for s in per_episode)) if per_episode else set()
        stats = {k: aggregate([stats_from_json({k: s[k]})[k] for s in per_episode]) for k in sorted(keys)}
    return dict(
        tasks=[tasks_by_index[i] for i in range(len(tasks_by_index))],
        length=length,
        from_index=from_index,
        data_file=data_file,
        row_offset=np.zeros(len(rows), dtype=np.int64),
        video_file=video_file,
        video_from={key: np.zeros(len(rows)) for key in video_keys},
        episode_tasks=tasks,
        episode_rows=rows,
        stats=stats,
    )


def _check_indices(index: np.ndarray, total: int, where: Path) -> None:
    if not np.array_equal(index, np.arange(total)):
        raise DatasetError(
            f"{where}: episode_index values must be 0..{total - 1} (info.json total_episodes "
            f"{total}), got {len(index)} episodes {index[:5].tolist()}..."
        )


def _check_data_files(meta: Metadata) -> None:
    """Each data file exists, has exactly its episodes' rows and a column of the right type per feature."""
    rows_needed: dict[Path, int] = {}
    for path, offset, length in zip(meta.data_file, meta.row_offset, meta.length, strict=True):
        rows_needed[path] = max(rows_needed.get(path, 0), int(offset + length))
    for path, rows in rows_needed.items():
        if not path.is_file():
            raise DatasetError(f"{path}: data file is missing")
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise DatasetError(f"{path}: not a readable parquet file ({e})") from e
        if pf.metadata.num_rows != rows:
            raise DatasetError(f"{path}: has {pf.metadata.num_rows} rows, the episodes metadata says {rows}")
        schema = pf.schema_arrow
        for key, feature in meta.features.items():
            if feature.is_video:
                continue
            if key not in schema.names:
                raise DatasetError(f"{path}: column {key!r} declared in meta/info.json is missing")
            problem = feature.arrow_matches(schema.field(key).type)
            if problem:
                raise DatasetError(f"{path}: column {key!r}: {problem}")


def _check_video_files(meta: Metadata) -> None:
    problems = video_problems(meta)
    if problems:
        more = f" (and {len(problems) - 1} more video problem(s); `robo4d data info` lists them)"
        raise DatasetError(problems[0] + (more if len(problems) > 1 else ""))


def video_problems(meta: Metadata) -> list[str]:
    """One line per video file that is missing, unreadable, shorter than its episodes (truncation) or of
    another resolution than info.json declares."""
    from robo4d.data.video import probe

    problems = []
    for key, files in meta.video_file.items():
        end: dict[Path, float] = {}
        for path, start, length in zip(files, meta.video_from[key], meta.length, strict=True):
            end[path] = max(end.get(path, 0.0), float(start) + int(length) / meta.fps)
        declared = tuple(meta.features[key].shape[:2])
        for path, needed in end.items():
            if not path.is_file():
                problems.append(f"{path}: video file of {key!r} is missing{_layout_hint(meta.root, path)}")
                continue
            try:
                facts = probe(path)
            except DatasetError as e:
                problems.append(str(e))
                continue
            have = facts["frames"] / meta.fps if facts["frames"] else facts["duration_s"]
            if have + 0.5 / meta.fps < needed:
                problems.append(
                    f"{path}: video of {key!r} lasts {have:.3f}s but its episodes need {needed:.3f}s; "
                    f"the file is truncated"
                )
            elif (facts["height"], facts["width"]) != declared:
                problems.append(
                    f"{path}: video of {key!r} is {facts['height']}x{facts['width']} (HxW) but meta/info.json "
                    f"declares {declared[0]}x{declared[1]}"
                )
    return problems


def _layout_hint(root: Path, path: Path) -> str:
    """A hint when the videos sit under a sibling top-level folder (`video/` where info.json says `videos/`)."""
    try:
        top = path.relative_to(root).parts[0]
    except ValueError:
        return ""
    for other in ("video", "videos"):
        if other != top and (root / other).is_dir():
            return f" (found {root / other}/ instead: meta/info.json's video_path puts videos under {top}/; rename it)"
    return ""


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as e:
        raise DatasetError(f"{path}: not a readable parquet file ({e})") from e


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DatasetError(f"{path}: not a readable parquet file ({e})") from e


def _require_columns(table: pa.Table, where: Path, names: list[str]) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise DatasetError(f"{where}: missing column(s) {missing}")
