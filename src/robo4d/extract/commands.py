"""`robo4d extract tracks | merge | viz`: argument dataclasses only; the work is imported inside `run`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from robo4d import types
from robo4d.extract.visibility import DEFAULT_FAIL_BELOW, DEFAULT_WARN_BELOW

_POINTS = types.POINTS_PREFIX.rstrip(".")


@dataclass(frozen=True, kw_only=True)
class Tracks:
    """Video -> 2D tracks -> depth -> 3D tracks, written as observation.points.<cam> / points_visible.<cam>."""

    dataset: Path  # LeRobot v3 dataset root
    camera: str  # camera name, e.g. ego
    grid: int = 36  # GxG query grid on frame 0 (the world's ground-truth grid)
    tracker: Literal["lk", "learned"] = "lk"  # 2D tracker: OpenCV pyramidal Lucas-Kanade, or robo4d's learned one
    tracker_weights: Path | None = None  # learned: weights folder (default: the weights shipped with robo4d)
    tracker_refine: bool = False  # learned: per frame, the estimate, LK or a geometric carry that fits the query best
    fb_threshold: float | None = 1.0  # forward-backward round-trip tolerance in pixels (None: no check)
    depth: Literal["sensor", "model"] = "sensor"  # the dataset's stored depth, or Depth Anything V2
    depth_model_dir: Path | None = None  # local Depth Anything V2 checkpoint (for --depth model)
    depth_median: float | None = None  # metres: reference median depth for a relative depth model
    format: Literal["xyz", "uvd"] = "xyz"  # camera-frame metres, or ARM4R's (0.002u, 0.002v, depth)
    world_frame: bool = False  # xyz in the world frame (needs extrinsics)
    reseed_every: int = 0  # re-seed lost points every K frames (0: never)
    edge_threshold: float = 0.1  # relative depth spread marking a depth edge (point dropped, not lifted)
    workers: int = 1  # worker processes over episodes
    shard: str | None = None  # "i/n": extract only shard i of n (then run `robo4d extract merge`)
    out: Path | None = None  # write a new dataset here instead of adding columns in place
    overwrite: bool = False  # replace existing track columns of this camera
    warn_visible: float = DEFAULT_WARN_BELOW  # warn (stderr) when under this fraction of point-frames is visible
    min_visible: float = DEFAULT_FAIL_BELOW  # refuse the tracks (exit 2) when under this fraction is visible

    def run(self) -> None:
        from robo4d.data.reader import Dataset
        from robo4d.extract import runner
        from robo4d.extract.depth_model import DepthModelConfig
        from robo4d.extract.errors import ExtractError
        from robo4d.extract.learned import LearnedConfig
        from robo4d.extract.pipeline import LiftConfig
        from robo4d.extract.trackers import LKConfig
        from robo4d.extract.visibility import VisibilityThresholds

        if self.tracker != "learned" and (self.tracker_weights is not None or self.tracker_refine):
            raise ExtractError(
                f"--tracker-weights and --tracker-refine need --tracker learned, got --tracker {self.tracker}"
            )
        shard = _parse_shard(self.shard) if self.shard is not None else None
        visibility = VisibilityThresholds(warn_below=self.warn_visible, fail_below=self.min_visible)
        settings = runner.ExtractSettings(
            tracker=self.tracker,
            lk=LKConfig(fb_threshold=self.fb_threshold),
            learned=LearnedConfig(weights=self.tracker_weights, refine=self.tracker_refine),
            lift=LiftConfig(grid=self.grid, format=self.format, world_frame=self.world_frame,
                            reseed_every=self.reseed_every, edge_threshold=self.edge_threshold),
            depth=self.depth,
            depth_model=DepthModelConfig(model_dir=self.depth_model_dir, median_depth=self.depth_median),
        )  # fmt: skip
        dataset = Dataset(self.dataset)
        runner.check_camera(dataset, self.camera)
        if self.depth == "model":
            from robo4d.extract.depth_model import check_scale

            check_scale(settings.depth_model, has_sensor_depth=types.depth_key(self.camera) in dataset.features)
        if shard is not None:
            index, count = shard
            totals = runner.extract_shard(self.dataset, self.camera, settings, index=index, count=count,
                                          workers=self.workers)  # fmt: skip
            print(f"shard {index}/{count} done: {_summary(totals)}; when all shards are done run "
                  f"`robo4d extract merge --dataset {self.dataset} --camera {self.camera}`")  # fmt: skip
            return
        existing = runner.recorded_settings(dataset, self.camera)
        if existing == settings.record() and self.out is None and not self.overwrite:
            print(f"{self.dataset}: tracks for camera {self.camera!r} made with these settings already exist; "
                  "nothing to do (--overwrite recomputes them)")  # fmt: skip
            return
        if types.points_key(self.camera) in dataset.features and not self.overwrite and self.out is None:
            raise ExtractError(
                f"{self.dataset}: {types.points_key(self.camera)} exists, made with other settings "
                f"({existing}); pass --overwrite to replace it or --out DIR to write a new dataset"
            )
        totals = runner.extract_shard(self.dataset, self.camera, settings, workers=self.workers)
        target = runner.merge(self.dataset, self.camera, out=self.out, overwrite=self.overwrite, visibility=visibility)
        print(f"{target}: wrote {types.points_key(self.camera)} and {types.points_visible_key(self.camera)}; "
              f"{_summary(totals)}")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Merge:
    """Combine `tracks --shard i/n` outputs into the dataset's track columns (all n shards must be done)."""

    dataset: Path  # LeRobot v3 dataset root holding extract/<camera>/shard-i-of-n/
    camera: str  # camera name
    out: Path | None = None  # write a new dataset here instead of adding columns in place
    overwrite: bool = False  # replace existing track columns of this camera
    warn_visible: float = DEFAULT_WARN_BELOW  # warn (stderr) when under this fraction of point-frames is visible
    min_visible: float = DEFAULT_FAIL_BELOW  # refuse the tracks (exit 2) when under this fraction is visible

    def run(self) -> None:
        from robo4d.extract import runner
        from robo4d.extract.visibility import VisibilityThresholds

        visibility = VisibilityThresholds(warn_below=self.warn_visible, fail_below=self.min_visible)
        target = runner.merge(self.dataset, self.camera, out=self.out, overwrite=self.overwrite, visibility=visibility)
        print(f"{target}: merged shards into {types.points_key(self.camera)}")


@dataclass(frozen=True, kw_only=True)
class Viz:
    """Draw one episode's tracks: an mp4 with trails and a PNG 3D scatter of the trajectories."""

    dataset: Path  # LeRobot v3 dataset root
    episode: int  # episode index
    camera: str  # camera name
    out: Path = Path(".")  # output folder
    key: str = _POINTS  # which tracks: observation.points (extracted) or ground_truth.points (embedded world)
    trail: int = 10  # frames of fading trail behind each point

    def run(self) -> None:
        from robo4d.extract.viz import render_episode

        video, scatter = render_episode(self.dataset, self.episode, self.camera, self.out, key=self.key,
                                        trail=self.trail)  # fmt: skip
        print(f"wrote {video} and {scatter}")


COMMANDS: dict[str, type] = {"tracks": Tracks, "merge": Merge, "viz": Viz}


def _parse_shard(text: str) -> tuple[int, int]:
    from robo4d.extract.errors import ExtractError

    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError as e:
        raise ExtractError(f"--shard must look like i/n (e.g. 0/8), got {text!r}") from e
    if not (count >= 1 and 0 <= index < count):
        raise ExtractError(f"--shard must be i/n with 0 <= i < n, got {text!r}")
    return index, count


def _summary(totals: dict[str, int]) -> str:
    n = max(totals.get("point_frames", 0), 1)
    return ", ".join(f"{k} {v / n:.1%}" for k, v in totals.items() if k != "point_frames") or "no new episodes"
