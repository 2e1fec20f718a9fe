"""Datasets seen through the policy's camera names (`--camera-map SRC=DST`).

A LeRobot dataset names its cameras as its recorder did (`observation.images.image`, `cam_high`, ...);
a policy names the cameras it reads (`front`, `wrist`). A stage's `camera_map` {dataset camera: policy
camera} renames every per-camera feature (images, depth, intrinsics, points, ...) of each dataset that has
the source camera, so one map serves several datasets whose camera names differ. Everything downstream
(fitting the config, checks, windows, the frozen-feature cache) sees only the policy's names; the cache
still keys its entries by the dataset's own camera through `source_camera`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robo4d.types import camera_of


def dataset_cameras(features: Any) -> set[str]:
    """Every camera named by a per-camera feature key."""
    cameras = set()
    for key in features:
        try:
            cameras.add(camera_of(key))
        except KeyError:
            continue  # not a per-camera key
    return cameras


def _renamed(key: str, mapping: dict[str, str]) -> str:
    try:
        cam = camera_of(key)
    except KeyError:
        return key
    return key[: len(key) - len(cam)] + mapping[cam] if cam in mapping else key


class CameraMappedDataset:
    """A read-only view of a dataset with its per-camera keys renamed; everything else is the dataset's."""

    def __init__(self, dataset: Any, camera_map: dict[str, str], *, root: Path) -> None:
        cameras = dataset_cameras(dataset.features)
        mapping = {src: dst for src, dst in camera_map.items() if src in cameras}
        targets = list(mapping.values()) + sorted(cameras - set(mapping))
        clash = sorted({cam for cam in targets if targets.count(cam) > 1})
        if clash:
            raise ValueError(
                f"{root}: --camera-map {mapping} gives camera(s) {clash} twice; its cameras are {sorted(cameras)}"
            )
        self.dataset = dataset
        self.mapping = mapping  # dataset camera -> policy camera, only those this dataset has
        self._to_source = {_renamed(key, mapping): key for key in dataset.features}  # policy key -> dataset key

    def source_camera(self, camera: str) -> str:
        """The dataset's own name of a policy camera (the frozen-feature cache keys entries by it)."""
        return next((src for src, dst in self.mapping.items() if dst == camera), camera)

    def source_key(self, key: str) -> str:
        return self._to_source.get(key, key)

    @property
    def features(self) -> dict[str, Any]:
        return {key: self.dataset.features[src] for key, src in self._to_source.items()}

    @property
    def stats(self) -> dict[str, Any]:
        inverse = {src: key for key, src in self._to_source.items()}
        return {inverse.get(key, key): value for key, value in self.dataset.stats.items()}

    def read_episode(self, ep: int, keys: list[str] | tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        keys = list(self._to_source) if keys is None else list(keys)
        data = self.dataset.read_episode(ep, [self.source_key(k) for k in keys])
        return {k: data[self.source_key(k)] for k in keys}

    def read_frames(
        self, ep: int, frame_indices: Any, keys: list[str] | tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        keys = list(self._to_source) if keys is None else list(keys)
        data = self.dataset.read_frames(ep, frame_indices, [self.source_key(k) for k in keys])
        return {k: data[self.source_key(k)] for k in keys}

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the view does not define (root, num_episodes, episode_task, ...).
        if name.startswith("__") or "dataset" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["dataset"], name)


def open_mapped(roots: tuple[str, ...], camera_map: dict[str, str], open_dataset: Any) -> list[tuple[Path, Any]]:
    """(root, dataset) for every root, cameras renamed by `camera_map`; a map entry whose camera no dataset
    has is an error (a typo would otherwise leave the policy's camera missing with a less direct message)."""
    opened = [(Path(r), open_dataset(Path(r))) for r in roots]
    if not camera_map:
        return opened
    seen = set().union(*(dataset_cameras(ds.features) for _, ds in opened))
    unused = sorted(src for src in camera_map if src not in seen)
    if unused:
        raise ValueError(
            f"--camera-map: no dataset of this stage has camera(s) {unused}; their cameras are {sorted(seen)}"
        )
    return [(root, CameraMappedDataset(ds, camera_map, root=root)) for root, ds in opened]
