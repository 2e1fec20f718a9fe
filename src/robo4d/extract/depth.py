"""Where per-frame metric depth comes from: the dataset's sensor depth, or a learned monocular model.

DepthSource.depth(frames (T, H, W, 3) uint8, sensor (T, H, W) float32 metres or None) -> (T, H, W) float32
metric z-depth in metres; invalid pixels may be NaN / inf / <= 0 and are rejected downstream, never lifted.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from robo4d.extract.errors import ExtractError

HOW_TO_GET_DEPTH = (
    "pass `--depth model --depth-model-dir DIR` with a local Depth Anything V2 checkpoint directory "
    "(config.json + model.safetensors, e.g. a copy of depth-anything/Depth-Anything-V2-Small-hf)"
)


class DepthSource(Protocol):
    name: str  # recorded in meta/robo4d.json

    def depth(self, frames: np.ndarray, sensor: np.ndarray | None) -> np.ndarray: ...


class SensorDepth:
    """The depth stored with the video (e.g. rendered or RGB-D). Fails clearly when the video has none."""

    name = "sensor"

    def depth(self, frames: np.ndarray, sensor: np.ndarray | None) -> np.ndarray:
        if sensor is None:
            raise ExtractError(f"this video has no stored depth; {HOW_TO_GET_DEPTH}")
        return sensor
