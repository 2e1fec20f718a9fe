"""Write a LeRobot v3.0 dataset episode by episode, publishing it atomically when finalised.

Files are written as episodes arrive (each episode is one parquet row group and a run of mp4 frames), into
`<root>.partial-<pid>/` which carries an "incomplete" marker; `finalize` writes the metadata, drops the
marker and renames the directory into place. A crash therefore never leaves anything at `root`, and a
reader pointed at the partial directory refuses it. Identical inputs give byte-identical parquet and JSON.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robo4d import types
from robo4d.data import layout
from robo4d.data.errors import DatasetError
from robo4d.data.features import Feature, decode_depth, features_to_info
from robo4d.data.stats import Stats, aggregate, episode_stats, stats_column, stats_to_json
from robo4d.data.video import CODEC, PIX_FMT, VideoFileWriter, probe

# LeRobot's standard per-frame columns, added to every dataset by the writer.
DEFAULT_FEATURES = {
    types.TIMESTAMP: Feature(dtype="float32", shape=(1,)),
    types.FRAME_INDEX: Feature(dtype="int64", shape=(1,)),
    types.EPISODE_INDEX: Feature(dtype="int64", shape=(1,)),
    types.INDEX: Feature(dtype="int64", shape=(1,)),
    types.TASK_INDEX: Feature(dtype="int64", shape=(1,)),
}
ROBO4D_FORMAT_VERSION = 1
_MB = 1024 * 1024


def stored_values_for_stats(feature: Feature, stored: np.ndarray) -> np.ndarray:
    """What a reader returns for stored values (depth: metres); stats describe what training sees."""
    return decode_depth(stored) if feature.is_depth else stored


def write_parquet_rows(
    writer: pq.ParquetWriter, features: dict[str, Feature], columns: dict[str, np.ndarray], schema: pa.Schema
) -> None:
    """Append one episode as one row group (readers can then fetch an episode without the rest)."""
    arrays = [features[name].to_arrow(columns[name]) for name in schema.names]
    writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def parquet_schema(features: dict[str, Feature]) -> pa.Schema:
    fields = []
    for key, feature in features.items():
        if feature.is_video:
            continue
        sample = np.zeros((1, *feature.frame_shape), dtype=_stored_numpy(feature))
        fields.append(pa.field(key, feature.to_arrow(sample).type, nullable=False))
    return pa.schema(fields)


def _stored_numpy(feature: Feature) -> np.dtype:
    return np.dtype(object) if feature.dtype == "string" else np.dtype(feature.dtype)


def tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as pandas writes LeRobot's DataFrame (index "task" -> column task_index), with the
    pandas metadata that makes `pd.read_parquet` restore "task" as the index."""
    pandas_meta = (
        '{"index_columns": ["task"], "column_indexes": [{"name": null, "field_name": null, '
        '"pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}], '
        '"columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", '
        '"numpy_type": "int64", "metadata": null}, {"name": "task", "field_name": "task", '
        '"pandas_type": "unicode", "numpy_type": "object", "metadata": null}]}'
    )
    table = pa.table(
        {
            types.TASK_INDEX: pa.array(np.arange(len(tasks), dtype=np.int64)),
            layout.TASK_COLUMN: pa.array(tasks, type=pa.string()),
        }
    )
    return table.replace_schema_metadata({b"pandas": pandas_meta.encode()})


def episodes_table(rows: list[dict[str, Any]], stats: list[dict[str, Stats]]) -> pa.Table:
    """meta/episodes parquet: LeRobot's per-episode columns, then `stats/<key>/<stat>`, then robo4d extras."""
    columns: dict[str, pa.Array] = {}
    for name in rows[0]:
        values = [row[name] for row in rows]
        columns[name] = pa.array(values, type=pa.list_(pa.string())) if name == layout.EP_TASKS else pa.array(values)
    for key in stats[0]:
        for stat in stats[0][key]:
            columns[layout.ep_stats_column(key, stat)] = stats_column([s[key][stat] for s in stats])
    return pa.table(columns)


_AT_FDCWD = -100  # renameat2: paths relative to the working directory
_RENAME_EXCHANGE = 2  # renameat2: swap the two paths in one step


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux renameat2); False where the OS or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def publish(tmp: Path, root: Path, *, overwrite: bool) -> None:
    """Move a finished directory into place; an existing dataset is replaced only with `overwrite`.

    Replacing swaps the two directories atomically where the OS can (Linux), so a process killed at any
    point leaves the old dataset or the new one at `root`. Elsewhere it takes two renames, and a kill between
    them leaves `root` missing with the old dataset at `<root>.old-<pid>`."""
    (tmp / layout.INCOMPLETE_MARKER).unlink()
    if root.exists() and not overwrite:
        raise DatasetError(f"{root}: already exists; pass overwrite=True to replace it (new data kept at {tmp})")
    if not root.exists():
        tmp.rename(root)
    elif _exchange(tmp, root):
        shutil.rmtree(tmp)  # now the old dataset
    else:
        old = root.parent / f"{root.name}.old-{os.getpid()}"
        root.rename(old)
        tmp.rename(root)
        shutil.rmtree(old)


STALE_SUFFIXES = (".partial-", ".edit-", ".old-")  # + pid: a writer's, an edit's, a non-atomic replace's


def sweep_stale(root: Path) -> list[Path]:
    """Remove the scratch siblings of `root` (`<root>.partial-<pid>`, `.edit-<pid>`, `.old-<pid>`) whose
    process is gone: a run killed before publishing leaves an unfinished copy, one killed after the swap the
    replaced old dataset. Either way the dataset at `root` is whole and the sibling is garbage. Returns them."""
    gone = []
    for suffix in STALE_SUFFIXES:
        for path in root.parent.glob(f"{glob.escape(root.name)}{suffix}*"):
            pid = path.name.rsplit("-", 1)[-1]
            if path.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
                gone.append(path)
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class DatasetWriter:
    """Append episodes, then `finalize()`. See the module docstring for the crash-safety contract."""

    def __init__(
        self,
        root: str | Path,
        *,
        fps: int,
        features: dict[str, Feature],
        robot_type: str | None,
        overwrite: bool = False,
        chunks_size: int = layout.DEFAULT_CHUNKS_SIZE,
        data_files_size_in_mb: float = layout.DEFAULT_DATA_FILES_SIZE_IN_MB,
        video_files_size_in_mb: float = layout.DEFAULT_VIDEO_FILES_SIZE_IN_MB,
        video_crf: int = 12,
        video_gop: int = 10,
    ) -> None:
        """`video_crf`: x264 constant-rate factor (lower = closer frames, bigger files); 12 decodes within
        1 dB of the yuv420p limit (about 40 dB PSNR on smooth rendered frames). `video_gop`: keyframe
        interval; random access decodes at most this many extra frames.
        File-size limits are in MiB; a file is closed once it reaches its limit."""
        self.root = Path(root)
        sweep_stale(self.root)
        if self.root.exists() and not overwrite:
            raise DatasetError(f"{self.root}: already exists; pass overwrite=True to replace it")
        if not isinstance(fps, int) or fps <= 0:
            raise DatasetError(f"{self.root}: fps must be a positive int, got {fps!r}")
        for key, feature in features.items():
            if key in DEFAULT_FEATURES:
                raise DatasetError(f"{self.root}: feature {key!r} is a standard column the writer fills in")
            if "/" in key:
                raise DatasetError(f"{self.root}: feature key {key!r} must not contain '/' (LeRobot's rule)")
            if not isinstance(feature, Feature):
                raise DatasetError(f"{self.root}: feature {key!r} must be a data.features.Feature")
        self.fps, self.robot_type, self.overwrite = fps, robot_type, overwrite
        self.chunks_size = chunks_size
        self.data_limit_mb, self.video_limit_mb = data_files_size_in_mb, video_files_size_in_mb
        self.video_crf, self.video_gop = video_crf, video_gop
        self.features = {**features, **DEFAULT_FEATURES}
        self.video_keys = [k for k, f in self.features.items() if f.is_video]
        self._schema = parquet_schema(self.features)
        self.tmp = self.root.parent / f"{self.root.name}.partial-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        (self.tmp / layout.INCOMPLETE_MARKER).write_text("written by robo4d.data.writer; not finalised\n")
        self._tasks: dict[str, int] = {}
        self._rows: list[dict[str, Any]] = []
        self._stats: list[dict[str, Stats]] = []
        self._num_frames = 0
        self._data: tuple[pq.ParquetWriter, pa.NativeFile] | None = None
        self._data_pos = (0, 0)  # (chunk_index, file_index) of the open (or next) data file
        self._videos: dict[str, VideoFileWriter] = {}
        self._video_pos = {key: (0, 0) for key in self.video_keys}
        self._finalized = False

    @property
    def num_episodes(self) -> int:
        return len(self._rows)

    def add_episode(self, frames: dict[str, np.ndarray], *, task: str, extra: dict[str, Any] | None = None) -> int:
        """Validate and write one episode: every declared feature with a leading T axis (videos uint8
        (T, H, W, 3), depth float metres (T, H, W)). `extra` holds per-episode metadata columns (e.g.
        `types.EPISODE_SUCCESS`, `types.EPISODE_SEED`); every episode must give the same keys. Returns the
        episode index."""
        if self._finalized:
            raise DatasetError(f"{self.root}: writer already finalised")
        ep = len(self._rows)
        where = f"{self.tmp}: episode {ep}"
        declared = [k for k in self.features if k not in DEFAULT_FEATURES]
        missing = [k for k in declared if k not in frames]
        unknown = [k for k in frames if k not in declared]
        if missing or unknown:
            raise DatasetError(f"{where}: missing key(s) {missing}, undeclared key(s) {unknown}")
        if not isinstance(task, str) or not task:
            raise DatasetError(f"{where}: task must be a non-empty string, got {task!r}")
        extra = self._check_extra(dict(extra or {}), where)
        values = {key: self.features[key].check_values(frames[key], key=key, where=where) for key in declared}
        lengths = {key: v.shape[0] for key, v in values.items()}
        length = next(iter(lengths.values()), 0)
        if length == 0 or len(set(lengths.values())) > 1:
            raise DatasetError(f"{where}: every key needs the same T >= 1 frames, got {lengths}")
        task_index = self._tasks.setdefault(task, len(self._tasks))
        values[types.TIMESTAMP] = (np.arange(length) / self.fps).astype(np.float32)
        values[types.FRAME_INDEX] = np.arange(length, dtype=np.int64)
        values[types.EPISODE_INDEX] = np.full(length, ep, dtype=np.int64)
        values[types.INDEX] = self._num_frames + np.arange(length, dtype=np.int64)
        values[types.TASK_INDEX] = np.full(length, task_index, dtype=np.int64)

        row: dict[str, Any] = {layout.EP_INDEX: ep, layout.EP_TASKS: [task], layout.EP_LENGTH: length}
        row.update(self._write_data(values))
        row[layout.EP_FROM_INDEX], row[layout.EP_TO_INDEX] = self._num_frames, self._num_frames + length
        for key in self.video_keys:
            row.update(self._write_video(key, values[key]))
        row[layout.EP_META_CHUNK], row[layout.EP_META_FILE] = 0, 0
        row.update(extra)
        stats = {}
        for key, feature in self.features.items():
            s = episode_stats(feature, stored_values_for_stats(feature, values[key]))
            if s is not None:
                stats[key] = s
        self._rows.append(row)
        self._stats.append(stats)
        self._num_frames += length
        return ep

    def _check_extra(self, extra: dict[str, Any], where: str) -> dict[str, Any]:
        clean = {}
        for key, value in extra.items():
            if isinstance(value, np.generic):
                value = value.item()
            if not isinstance(value, bool | int | float | str):
                raise DatasetError(f"{where}: extra[{key!r}] must be a bool, int, float or str, got {value!r}")
            clean[key] = value
        if self._rows:
            first = {k: v for k, v in self._rows[0].items() if k in self._extra_keys}
            if set(first) != set(clean) or any(type(first[k]) is not type(clean[k]) for k in clean):
                raise DatasetError(f"{where}: extra has keys/types {_kinds(clean)}; episode 0 had {_kinds(first)}")
        else:
            self._extra_keys = tuple(clean)
        return clean

    def _write_data(self, values: dict[str, np.ndarray]) -> dict[str, int]:
        if self._data is not None and self._data[1].tell() >= self.data_limit_mb * _MB:
            self._close_data()
            self._data_pos = layout.next_file(*self._data_pos, self.chunks_size)
        if self._data is None:
            chunk, file = self._data_pos
            path = self.tmp / layout.DATA_PATH.format(chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            sink = pa.OSFile(str(path), "wb")
            self._data = (pq.ParquetWriter(sink, self._schema, compression="snappy"), sink)
        write_parquet_rows(self._data[0], self.features, values, self._schema)
        return {layout.EP_DATA_CHUNK: self._data_pos[0], layout.EP_DATA_FILE: self._data_pos[1]}

    def _close_data(self) -> None:
        if self._data is not None:
            self._data[0].close()
            self._data[1].close()
            self._data = None

    def _write_video(self, key: str, frames: np.ndarray) -> dict[str, Any]:
        writer = self._videos.get(key)
        if writer is not None and writer.size_bytes() >= self.video_limit_mb * _MB:
            writer.close()
            writer = None
            self._video_pos[key] = layout.next_file(*self._video_pos[key], self.chunks_size)
        chunk, file = self._video_pos[key]
        if writer is None:
            path = self.tmp / layout.VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            h, w = self.features[key].shape[:2]
            writer = VideoFileWriter(path, fps=self.fps, height=h, width=w, crf=self.video_crf, gop=self.video_gop)
            self._videos[key] = writer
        start, end = writer.append(frames)
        return {
            layout.ep_video_chunk(key): chunk,
            layout.ep_video_file(key): file,
            layout.ep_video_from(key): start,
            layout.ep_video_to(key): end,
        }

    def finalize(self, robo4d_meta: dict[str, Any] | None = None) -> Path:
        """Write meta/ (info, stats, tasks, episodes, robo4d.json) and publish the dataset at `root`.

        `robo4d_meta`: JSON-ready facts about the dataset (e.g. the world preset that generated it), stored
        in meta/robo4d.json next to `format_version` and `depth_scale_m`."""
        if self._finalized:
            raise DatasetError(f"{self.root}: writer already finalised")
        if not self._rows:
            raise DatasetError(f"{self.tmp}: no episodes were added; refusing to publish an empty dataset")
        meta = {"format_version": ROBO4D_FORMAT_VERSION, "depth_scale_m": types.DEPTH_SCALE_M}
        clash = sorted(set(meta) & set(robo4d_meta or {}))
        if clash:
            raise DatasetError(f"{self.root}: robo4d_meta may not set {clash}; the writer owns them")
        meta.update(robo4d_meta or {})
        self._close_data()
        for writer in self._videos.values():
            writer.close()
        self._finalized = True

        tasks = list(self._tasks)
        (self.tmp / types.TASKS_PARQUET).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tasks_table(tasks), self.tmp / types.TASKS_PARQUET)
        episodes_path = self.tmp / layout.EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(episodes_table(self._rows, self._stats), episodes_path, compression="snappy")
        stats = {key: aggregate([s[key] for s in self._stats]) for key in self._stats[0]}
        layout.write_json(self.tmp / types.STATS_JSON, stats_to_json(stats))
        features = dict(self.features)
        for key in self.video_keys:
            features[key] = self._with_video_info(key, features[key])
        info = {
            "codebase_version": types.CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self._rows),
            "total_frames": self._num_frames,
            "total_tasks": len(tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_limit_mb,
            "video_files_size_in_mb": self.video_limit_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self._rows)}"},
            "data_path": layout.DATA_PATH,
            "video_path": layout.VIDEO_PATH if self.video_keys else None,
            "features": features_to_info(features),
        }
        layout.write_json(self.tmp / types.INFO_JSON, info)
        layout.write_json(self.tmp / types.ROBO4D_JSON, meta)
        publish(self.tmp, self.root, overwrite=self.overwrite)
        return self.root

    def _with_video_info(self, key: str, feature: Feature) -> Feature:
        facts = probe(self.tmp / layout.VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0))
        info = {
            "video.height": facts["height"],
            "video.width": facts["width"],
            "video.codec": CODEC,
            "video.pix_fmt": PIX_FMT,
            "video.is_depth_map": False,
            "video.fps": self.fps,
            "video.channels": 3,
            "has_audio": False,
        }
        names = feature.names if feature.names is not None else ("height", "width", "channels")
        return Feature(dtype="video", shape=feature.shape, names=names, info=info)

    def abort(self) -> None:
        """Drop everything written so far (the partial directory); `root` is untouched."""
        self._close_data()
        for writer in self._videos.values():
            writer.close()
        self._finalized = True
        shutil.rmtree(self.tmp, ignore_errors=True)


def _kinds(extra: dict[str, Any]) -> dict[str, str]:
    return {k: type(v).__name__ for k, v in extra.items()}
