"""One episode through the data engine: grid queries -> 2D tracks -> depth -> filters -> 3D tracks.

Points that are not visible on a frame (lost by the tracker, invalid depth, on a depth edge) keep their nearest
visible value in time and visible=False: the dataset writer has no NaN, and "held still" is the one filler that
adds no motion to ARM4R's next-step delta targets (see `lift.hold_last_valid`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from robo4d.extract.depth import DepthSource
from robo4d.extract.errors import ExtractError
from robo4d.extract.lift import (
    Sampling,
    camera_to_world,
    depth_discontinuity,
    hold_last_valid,
    sample_depth,
    to_uvd,
    unproject,
)
from robo4d.extract.queries import grid_queries
from robo4d.extract.trackers import PointTracker, track_with_reseeding

Format = Literal["xyz", "uvd"]


@dataclass(frozen=True, kw_only=True)
class LiftConfig:
    """How queries are laid out and how 2D tracks become the stored 3D columns."""

    grid: int = 36  # GxG query grid on frame 0 (ARM4R: 36 -> 1296 points); equals the world's ground-truth grid
    format: Format = "xyz"  # xyz: camera-frame metres (like ground truth); uvd: ARM4R's (0.002u, 0.002v, depth m)
    world_frame: bool = False  # xyz only: transform to the world frame with the camera extrinsics
    reseed_every: int = 0  # re-seed lost points on their grid pixel every K frames (0 = never)
    sampling: Sampling = "bilinear"  # depth sampling at sub-pixel track positions (see lift.py for why)
    # A point whose 3x3 depth neighbourhood spans more than this relative depth ((max - min) / min) sits on an
    # occlusion edge and is marked not visible instead of being lifted between foreground and background.
    edge_threshold: float = 0.1

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise ValueError(f"LiftConfig.grid must be >= 1, got {self.grid}")
        if self.format not in ("xyz", "uvd"):
            raise ValueError(f"LiftConfig.format must be 'xyz' or 'uvd', got {self.format!r}")
        if self.world_frame and self.format != "xyz":
            raise ValueError("LiftConfig.world_frame applies to format 'xyz' only (uvd is image-space by definition)")
        if self.reseed_every < 0:
            raise ValueError(f"LiftConfig.reseed_every must be >= 0, got {self.reseed_every}")
        if self.edge_threshold <= 0:
            raise ValueError(f"LiftConfig.edge_threshold must be > 0, got {self.edge_threshold}")


@dataclass(frozen=True, kw_only=True)
class EpisodeInput:
    """What extraction needs from one episode of one camera; validated on construction."""

    source: str  # where it came from, for error messages (e.g. "/data/human episode 3 camera 'ego'")
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    intrinsics: np.ndarray  # (T, 3, 3) or (3, 3) pixel intrinsics, continuous-pixel convention (queries.py)
    depth: np.ndarray | None = None  # (T, H, W) float32 metres, None when the video has no stored depth
    extrinsics: np.ndarray | None = None  # (T, 4, 4) or (4, 4) world-from-camera; needed for world_frame only

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise ExtractError(f"{self.source}: video must be (T, H, W, 3) uint8, got {f.shape} {f.dtype}")
        if len(f) < 2:
            raise ExtractError(f"{self.source}: episode has {len(f)} frame(s); tracking needs at least 2")
        if self.depth is not None and self.depth.shape != f.shape[:3]:
            raise ExtractError(
                f"{self.source}: depth has shape {self.depth.shape} but the video is {f.shape[:3]} (T, H, W); "
                "video and depth must have the same frames and resolution"
            )
        for name, arr, size in (("intrinsics", self.intrinsics, 3), ("extrinsics", self.extrinsics, 4)):
            if arr is None:
                continue
            if arr.shape not in ((size, size), (len(f), size, size)):
                raise ExtractError(
                    f"{self.source}: {name} must be ({size}, {size}) or (T={len(f)}, {size}, {size}), got {arr.shape}"
                )
            if not np.isfinite(arr).all():
                raise ExtractError(f"{self.source}: {name} contain NaN or inf")
        k = np.broadcast_to(self.intrinsics, (len(f), 3, 3))
        if (k[:, 0, 0] <= 0).any() or (k[:, 1, 1] <= 0).any():
            raise ExtractError(f"{self.source}: intrinsics have non-positive focal lengths (fx, fy)")


@dataclass(frozen=True, kw_only=True)
class Tracks:
    """Extracted tracks of one episode and why points were dropped (counts over all T*N point-frames)."""

    points: np.ndarray  # (T, N, 3) float32 in the configured format / frame
    visible: np.ndarray  # (T, N) bool
    uv: np.ndarray  # (T, N, 2) float32 the 2D tracks (tracker's last estimate where lost)
    lost_by_tracker: int  # point-frames the 2D tracker lost (incl. forward-backward failures)
    invalid_depth: int  # tracked point-frames whose depth was NaN / inf / <= 0 / outside the image
    on_depth_edge: int  # tracked point-frames with valid depth rejected by the discontinuity filter


def extract_episode(
    episode: EpisodeInput, *, tracker: PointTracker, depth_source: DepthSource, config: LiftConfig
) -> Tracks:
    frames = episode.frames
    t_len, height, width = frames.shape[:3]
    try:
        queries = grid_queries(height, width, config.grid)  # (N, 2)
    except ValueError as e:
        raise ExtractError(f"{episode.source}: {e}") from e
    if config.world_frame and episode.extrinsics is None:
        raise ExtractError(f"{episode.source}: --world-frame needs camera extrinsics, and this camera has none")

    depth = depth_source.depth(frames, episode.depth)  # (T, H, W) metres
    if depth.shape != (t_len, height, width):
        raise ExtractError(
            f"{episode.source}: depth source {depth_source.name!r} returned {depth.shape}, "
            f"expected {(t_len, height, width)}"
        )
    uv, tracked = track_with_reseeding(tracker, frames, queries, every=config.reseed_every)  # (T,N,2), (T,N)

    z = sample_depth(depth, uv, mode=config.sampling)  # (T, N), NaN where invalid
    depth_ok = np.isfinite(z) & (z > 0)
    edge = depth_discontinuity(depth, uv, rel_threshold=config.edge_threshold) & depth_ok
    visible = tracked & depth_ok & ~edge  # (T, N)
    z = np.where(depth_ok, z, 1.0).astype(np.float32)  # placeholder only where visible is False; replaced below

    if config.format == "uvd":
        values = to_uvd(uv, z)
    else:
        intrinsics = np.broadcast_to(episode.intrinsics, (t_len, 3, 3)).astype(np.float64)
        values = unproject(uv, z, intrinsics)
        if config.world_frame:
            values = camera_to_world(values, np.broadcast_to(episode.extrinsics, (t_len, 4, 4)).astype(np.float64))
    return Tracks(
        points=hold_last_valid(values, visible).astype(np.float32),
        visible=visible,
        uv=uv,
        lost_by_tracker=int((~tracked).sum()),
        invalid_depth=int((tracked & ~depth_ok).sum()),
        on_depth_edge=int((tracked & edge).sum()),
    )
