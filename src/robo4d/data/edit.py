"""Add per-frame columns to an existing v3.0 dataset (e.g. 3D point tracks computed from its videos).

    add_features(root, {types.points_key("ego"): Feature(dtype="float32", shape=(256, 3)), ...},
                 compute=lambda ep: {types.points_key("ego"): tracks_of(ep), ...})

`compute(episode_index)` is called once per episode, in episode order, and returns key -> (T, ...) with
T the episode's length (same dtype rules as `DatasetWriter.add_episode`; depth in metres). The new
columns are declared in info.json, and stats.json and the per-episode `stats/...` columns are updated.

Crash safety: the edited dataset is assembled in a sibling directory `<target>.edit-<pid>` (unchanged
files hard-linked, never modified) carrying the incomplete marker, then swapped in atomically
(`writer.publish`). If `compute` or anything else fails, the sibling is removed and the original is
untouched; a process killed mid-edit leaves the original intact plus a sibling that readers refuse.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robo4d import types
from robo4d.data import layout
from robo4d.data.errors import DatasetError
from robo4d.data.features import Feature, features_to_info
from robo4d.data.reader import Dataset
from robo4d.data.stats import Stats, aggregate, episode_stats, stats_column, stats_to_json
from robo4d.data.writer import DEFAULT_FEATURES, parquet_schema, publish, stored_values_for_stats, sweep_stale

Compute = Callable[[int], dict[str, np.ndarray]]


def add_features(
    root: str | Path,
    features: dict[str, Feature],
    compute: Compute,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    finish: Callable[[Path], None] | None = None,
) -> Path:
    """Add `features` (computed per episode by `compute`) to the dataset at `root`; returns its path.

    `out`: write the result as a new dataset there (which must not exist) and leave `root` as it was.
    `overwrite`: allow replacing existing non-video, non-standard columns; otherwise they are refused.
    `finish(work_dir)`: last changes to the edited copy before it is published (e.g. a record of how the
    columns were made), so they land atomically with the columns. Replace files there, never write into
    them: unchanged files are hard links to the original's.
    """
    root = Path(root)
    ds = Dataset(root)
    if ds.codebase_version != types.CODEBASE_VERSION:
        raise DatasetError(
            f"{root}: editing needs codebase_version {types.CODEBASE_VERSION}, got {ds.codebase_version}"
        )
    _check_new_features(ds, features, overwrite)
    target = Path(out) if out is not None else root
    if out is not None and target.exists():
        raise DatasetError(f"{target}: output already exists")
    sweep_stale(target)
    work = target.parent / f"{target.name}.edit-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / layout.INCOMPLETE_MARKER).write_text("written by robo4d.data.edit; not finished\n")
    try:
        _link_unchanged(root, work)
        all_features = {k: f for k, f in ds.features.items() if k not in features} | dict(features)
        new_stats = _rewrite_data(ds, work, features, compute)
        _rewrite_episodes(root, work, new_stats)
        stats = {k: v for k, v in ds.stats.items() if k not in features}
        stats.update({key: aggregate([s[key] for s in new_stats]) for key in new_stats[0]})
        layout.write_json(work / types.STATS_JSON, stats_to_json(stats))
        info = dict(ds.info)
        info["features"] = features_to_info(all_features)
        layout.write_json(work / types.INFO_JSON, info)
        if finish is not None:
            finish(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    publish(work, target, overwrite=out is None)
    return target


def _check_new_features(ds: Dataset, features: dict[str, Feature], overwrite: bool) -> None:
    if not features:
        raise DatasetError(f"{ds.root}: no features to add")
    for key, feature in features.items():
        if not isinstance(feature, Feature):
            raise DatasetError(f"{ds.root}: feature {key!r} must be a data.features.Feature")
        if feature.is_video:
            raise DatasetError(f"{ds.root}: add_features writes parquet columns; {key!r} is a video")
        if key in DEFAULT_FEATURES or "/" in key:
            raise DatasetError(f"{ds.root}: {key!r} is a standard column or contains '/'; it cannot be added")
        if key in ds.features:
            if ds.features[key].is_video:
                raise DatasetError(f"{ds.root}: {key!r} is a video feature and cannot be replaced by a column")
            if not overwrite:
                raise DatasetError(f"{ds.root}: feature {key!r} already exists; pass overwrite=True to replace it")


def _link_unchanged(root: Path, work: Path) -> None:
    """Everything except data parquet and the metadata we rewrite, hard-linked (copied across devices)."""
    rewritten = {types.INFO_JSON, types.STATS_JSON}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or rel in rewritten or rel.startswith(("data/", layout.EPISODES_DIR + "/")):
            continue
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)


def _rewrite_data(ds: Dataset, work: Path, features: dict[str, Feature], compute: Compute) -> list[dict[str, Stats]]:
    """Write every data file again with the new columns, one row group per episode; returns per-episode
    stats of the new features (index = episode)."""
    new_fields = list(parquet_schema(features))
    stats: list[dict[str, Stats]] = []
    writer: pq.ParquetWriter | None = None
    current: Path | None = None
    done: set[Path] = set()
    table: pa.Table | None = None
    for ep in range(ds.num_episodes):
        path = ds.data_file(ep)
        if path != current:
            if writer is not None:
                writer.close()
            if path in done:
                raise DatasetError(f"{path}: its episodes are not consecutive; add_features cannot rewrite it")
            done.add(path)
            current, table = path, pq.read_table(path)
            # Kept columns keep their on-disk types (a LeRobot file may nest differently); the file's
            # Hugging Face schema metadata is dropped because it would no longer list every column.
            schema = pa.schema([f for f in table.schema if f.name not in features] + new_fields)
            dest = work / path.relative_to(ds.root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(dest, schema, compression="snappy")
        length = ds.episode_length(ep)
        values = _computed(ds, ep, length, features, compute(ep))
        stats.append(
            {k: s for k, f in features.items() if (s := episode_stats(f, stored_values_for_stats(f, values[k])))}
        )
        rows = table.slice(ds.data_row_offset(ep), length)
        arrays = [features[n].to_arrow(values[n]) if n in features else rows.column(n) for n in schema.names]
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
    if writer is not None:
        writer.close()
    return stats


def _computed(
    ds: Dataset, ep: int, length: int, features: dict[str, Feature], values: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    where = f"{ds.root}: compute(episode {ep})"
    if not isinstance(values, dict):
        raise DatasetError(f"{where}: must return a dict key -> (T, ...) array, got {type(values).__name__}")
    missing, unknown = sorted(set(features) - set(values)), sorted(set(values) - set(features))
    if missing or unknown:
        raise DatasetError(f"{where}: missing key(s) {missing}, undeclared key(s) {unknown}")
    out = {key: features[key].check_values(values[key], key=key, where=where) for key in features}
    for key, v in out.items():
        if v.shape[0] != length:
            raise DatasetError(f"{where}: {key!r} has {v.shape[0]} frames, the episode has {length}")
    return out


def _rewrite_episodes(root: Path, work: Path, new_stats: list[dict[str, Stats]]) -> None:
    """Per-episode `stats/<key>/<stat>` columns for the new features, added to (or replacing) each file."""
    for path in sorted((root / layout.EPISODES_DIR).glob("*/*.parquet")):
        table = pq.read_table(path)
        eps = table[layout.EP_INDEX].to_numpy()  # (e,)
        for key in new_stats[0]:
            for stat in new_stats[0][key]:
                name = layout.ep_stats_column(key, stat)
                column = stats_column([new_stats[int(ep)][key][stat] for ep in eps])
                if name in table.column_names:
                    table = table.set_column(table.column_names.index(name), name, column)
                else:
                    table = table.append_column(name, column)
        dest = work / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, dest, compression="snappy")
