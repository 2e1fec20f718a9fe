"""Read a LeRobot dataset (v3.0, or v2.1) by episode or by frames.

`Dataset(root)` validates the whole layout on open (metadata, every data file's rows and column types,
every video's presence and length). Reads are vectorised: an episode is its data file's row groups sliced
to the episode, converted column-wise to numpy; video frames are decoded frame-accurately by timestamp.
File handles and decoders are opened lazily per process, so a Dataset can go to DataLoader workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robo4d.data.errors import DatasetError
from robo4d.data.features import Feature
from robo4d.data.metadata import Metadata, load_metadata, video_problems
from robo4d.data.stats import Stats
from robo4d.data.video import VideoDecoders


class Dataset:
    """One dataset on disk. Keys are feature keys from `robo4d.types`; episodes are 0..num_episodes-1.

    Arrays come back as (T, ...) with T frames: scalars (T,), depth float32 metres (T, H, W), videos
    uint8 RGB (T, H, W, 3), everything else in its declared dtype and shape.
    """

    def __init__(self, root: str | Path, *, check_videos: bool = True) -> None:
        """`check_videos=False` opens a dataset whose videos are missing or broken (to describe it: see
        `video_problems`); reading such a video still raises."""
        self.root = Path(root)
        self._meta: Metadata = load_metadata(self.root, check_videos=check_videos)
        self._decoders = VideoDecoders()
        self._pid = -1
        self._files: dict[Path, pq.ParquetFile] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Parquet handles are per process; a worker reopens its own.
        state = dict(self.__dict__)
        state["_files"], state["_pid"] = {}, -1
        return state

    # -- metadata ----------------------------------------------------------------------------------

    @property
    def codebase_version(self) -> str:
        return self._meta.version

    @property
    def info(self) -> dict[str, Any]:
        """meta/info.json as parsed."""
        return self._meta.info

    @property
    def fps(self) -> int:
        return self._meta.fps

    @property
    def robot_type(self) -> str | None:
        return self._meta.info.get("robot_type")

    @property
    def features(self) -> dict[str, Feature]:
        return self._meta.features

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self._meta.features.items() if f.is_video]

    @property
    def num_episodes(self) -> int:
        return len(self._meta.length)

    @property
    def num_frames(self) -> int:
        return int(self._meta.length.sum())

    @property
    def tasks(self) -> list[str]:
        """All task strings; position = task_index."""
        return self._meta.tasks

    @property
    def stats(self) -> dict[str, Stats]:
        """meta/stats.json: key -> stat name -> array (see data.stats for shapes)."""
        return self._meta.stats

    @property
    def robo4d_meta(self) -> dict[str, Any]:
        """meta/robo4d.json ({} for datasets not written by robo4d)."""
        return self._meta.robo4d_meta

    @property
    def episode_lengths(self) -> np.ndarray:
        return self._meta.length  # (E,)

    def episode_length(self, ep: int) -> int:
        return int(self._meta.length[self._check_ep(ep)])

    def episode_from_index(self, ep: int) -> int:
        """Global `index` of the episode's first frame."""
        return int(self._meta.from_index[self._check_ep(ep)])

    def episode_task(self, ep: int) -> str:
        """The episode's (first) task string."""
        tasks = self._meta.episode_tasks[self._check_ep(ep)]
        if not tasks:
            raise DatasetError(f"{self.root}: episode {ep} lists no task")
        return tasks[0]

    def episode_meta(self, ep: int) -> dict[str, Any]:
        """The episode's metadata row (LeRobot columns and robo4d extras such as `types.EPISODE_SUCCESS`)."""
        return dict(self._meta.episode_rows[self._check_ep(ep)])

    def data_file(self, ep: int) -> Path:
        return self._meta.data_file[self._check_ep(ep)]

    def data_row_offset(self, ep: int) -> int:
        """Row of the episode's first frame within its data file."""
        return int(self._meta.row_offset[self._check_ep(ep)])

    def video_file(self, ep: int, key: str) -> Path:
        return self._meta.video_file[key][self._check_ep(ep)]

    def video_problems(self) -> list[str]:
        """One line per missing, unreadable, truncated or mis-sized video file ([] when all are sound)."""
        return video_problems(self._meta)

    # -- data --------------------------------------------------------------------------------------

    def read_episode(self, ep: int, keys: list[str] | tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """key -> (T, ...) for the whole episode; `keys=None` reads every feature."""
        return self._read(ep, None, self._keys(keys))

    def read_frames(
        self, ep: int, frame_indices: Any, keys: list[str] | tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        """key -> (n, ...) for frames `frame_indices` (within the episode, any order, repeats allowed)."""
        idx = np.asarray(frame_indices, dtype=np.int64).reshape(-1)  # (n,)
        length = self.episode_length(ep)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= length:
            raise DatasetError(
                f"{self.root}: episode {ep} has frames 0..{length - 1}; asked for "
                f"{idx.min() if idx.size else 'none'}..{idx.max() if idx.size else ''}"
            )
        return self._read(ep, idx, self._keys(keys))

    def _keys(self, keys: list[str] | tuple[str, ...] | None) -> list[str]:
        if keys is None:
            return list(self._meta.features)
        unknown = [k for k in keys if k not in self._meta.features]
        if unknown:
            raise DatasetError(
                f"{self.root}: unknown feature(s) {unknown}; the dataset has {sorted(self._meta.features)}"
            )
        return list(keys)

    def _check_ep(self, ep: int) -> int:
        if not 0 <= ep < self.num_episodes:
            raise DatasetError(f"{self.root}: episode {ep} out of range 0..{self.num_episodes - 1}")
        return int(ep)

    def _read(self, ep: int, idx: np.ndarray | None, keys: list[str]) -> dict[str, np.ndarray]:
        ep = self._check_ep(ep)
        out: dict[str, np.ndarray] = {}
        table_keys = [k for k in keys if not self._meta.features[k].is_video]
        if table_keys:
            path = self._meta.data_file[ep]
            table = self._episode_rows(ep, table_keys)
            if idx is not None:
                table = table.take(pa.array(idx))
            for key in table_keys:
                feature = self._meta.features[key]
                values = feature.from_arrow(table.column(key), key=key, where=str(path))
                if values.dtype.kind == "f":
                    finite = np.isfinite(values).reshape(len(values), -1).all(axis=1)  # (n,)
                    if not finite.all():
                        frame = int(np.flatnonzero(~finite)[0])
                        frame = int(idx[frame]) if idx is not None else frame
                        raise DatasetError(f"{path}: column {key!r} has NaN or inf in episode {ep} at frame {frame}")
                out[key] = values
        for key in keys:
            if self._meta.features[key].is_video:
                frames = np.arange(self.episode_length(ep)) if idx is None else idx
                out[key] = self._decoders.decode(
                    self._meta.video_file[key][ep],
                    fps=self.fps,
                    from_timestamp=float(self._meta.video_from[key][ep]),
                    frame_indices=frames,
                    expected_hw=tuple(self._meta.features[key].shape[:2]),
                )
        return {key: out[key] for key in keys}

    def _episode_rows(self, ep: int, columns: list[str]) -> pa.Table:
        """The episode's rows of `columns`, reading only the row groups that overlap them."""
        pf = self._parquet(self._meta.data_file[ep])
        start = int(self._meta.row_offset[ep])
        stop = start + int(self._meta.length[ep])
        sizes = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)])
        ends = np.cumsum(sizes)  # (G,)
        first, last = int(np.searchsorted(ends, start, side="right")), int(np.searchsorted(ends, stop - 1, "right"))
        try:
            table = pf.read_row_groups(list(range(first, last + 1)), columns=columns)
        except (pa.ArrowInvalid, OSError) as e:
            raise DatasetError(f"{self._meta.data_file[ep]}: cannot read episode {ep} ({e})") from e
        group_start = int(ends[first] - sizes[first])
        return table.slice(start - group_start, stop - start)

    def _parquet(self, path: Path) -> pq.ParquetFile:
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if path not in self._files:
            self._files[path] = pq.ParquetFile(path)
        return self._files[path]

    def __repr__(self) -> str:
        return (
            f"Dataset({str(self.root)!r}, {self.codebase_version}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, fps={self.fps})"
        )
