"""Learned monocular depth for videos without depth: Depth Anything V2 (Yang et al., 2024) via `transformers`.

Weights are loaded only from a local directory (`local_files_only=True`; nothing is downloaded at run time),
e.g. a copy of `depth-anything/Depth-Anything-V2-Small-hf` (relative) or a `...-Metric-Indoor-...-hf` variant.

Scale, honestly:
- Relative models (config `depth_estimation_type="relative"`) output affine-invariant *inverse* depth
  (disparity up to an unknown scale and shift, per image). No metric depth can be read from it. We assume the shift
  is zero (disparity ∝ 1 / depth) and fix the scale per frame so that the frame's median depth equals a reference
  median: the sensor depth of frame 0 when the dataset has one, else `median_depth` given by the user. This also
  assumes the scene's median depth stays roughly constant over the clip (true for short egocentric clips, wrong
  when the camera walks through a room). Without a reference, relative models are refused.
- Metric models output metres (bounded by the config's `max_depth`). They are used as is, or, with a reference,
  rescaled by one factor for the whole clip (median of frame 0 to the reference median), which keeps the clip's
  depth consistent over time.
Pixels with non-positive output (zero disparity = infinitely far, or a dead metric output) become NaN, so they are
never lifted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robo4d.extract.depth import HOW_TO_GET_DEPTH
from robo4d.extract.errors import ExtractError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
# Depth Anything V2's image processors normalise with the ImageNet statistics.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclass(frozen=True, kw_only=True)
class DepthModelConfig:
    model_dir: Path | None = None  # local Depth Anything V2 checkpoint directory (config.json + weights)
    input_size: int = 518  # the network sees frames resized so the short side is ~this (a multiple of 14)
    batch_size: int = 8  # frames per forward pass
    median_depth: float | None = None  # metres: reference median depth when the dataset has no sensor depth

    def __post_init__(self) -> None:
        if self.input_size < 14 or self.batch_size < 1:
            raise ValueError(f"DepthModelConfig needs input_size >= 14 and batch_size >= 1, got {self}")
        if self.median_depth is not None and not (np.isfinite(self.median_depth) and self.median_depth > 0):
            raise ValueError(
                f"DepthModelConfig.median_depth must be a positive number of metres, got {self.median_depth}"
            )


class DepthAnythingDepth:
    """DepthSource backed by Depth Anything V2. The model is loaded lazily (once per process) on first use."""

    name = "depth-anything-v2"

    def __init__(self, config: DepthModelConfig) -> None:
        check_model_dir(config.model_dir)
        self.config = config
        self._model: Any = None

    @property
    def kind(self) -> str:
        """'relative' or 'metric', from the checkpoint's config."""
        return self._load().config.depth_estimation_type

    def depth(self, frames: np.ndarray, sensor: np.ndarray | None) -> np.ndarray:
        raw = self.predict(frames)  # (T, H, W) disparity (relative) or metres (metric)
        raw = np.where(raw > 0, raw, np.nan)
        reference = _reference_median(sensor, self.config.median_depth)
        if self.kind == "relative":
            if reference is None:
                raise ExtractError(
                    f"{self.config.model_dir} is a relative-depth model (affine-invariant disparity, no metric "
                    "scale): give a reference median depth in metres (--depth-median M) or use a dataset with "
                    "sensor depth on frame 0"
                )
            per_frame = np.nanmedian(raw.reshape(len(raw), -1), axis=1)  # (T,)
            return (reference * per_frame[:, None, None] / raw).astype(np.float32)
        if reference is None:
            return raw.astype(np.float32)
        return (raw * (reference / np.nanmedian(raw[0]))).astype(np.float32)

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """The network's raw output at the frames' resolution. frames (T, H, W, 3) uint8 -> (T, H, W) float32."""
        import cv2
        import torch

        model = self._load()
        t_len, height, width = frames.shape[:3]
        scale = self.config.input_size / min(height, width)
        size = (_multiple_of_14(width * scale), _multiple_of_14(height * scale))  # (w, h) for cv2
        out = np.empty((t_len, height, width), np.float32)
        for start in range(0, t_len, self.config.batch_size):
            batch = frames[start : start + self.config.batch_size]
            resized = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in batch])  # (B, h, w, 3)
            x = (resized.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
            pixel_values = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # (B, 3, h, w)
            with torch.inference_mode():
                pred = model(pixel_values=pixel_values).predicted_depth  # (B, h', w')
                pred = torch.nn.functional.interpolate(
                    pred[:, None], size=(height, width), mode="bilinear", align_corners=False
                )[:, 0]  # (B, H, W)
            out[start : start + len(batch)] = pred.numpy()
        return out

    def _load(self) -> Any:
        if self._model is None:
            from transformers import DepthAnythingForDepthEstimation

            try:
                model = DepthAnythingForDepthEstimation.from_pretrained(self.config.model_dir, local_files_only=True)
            except (OSError, ValueError) as e:
                raise ExtractError(f"could not load Depth Anything V2 from {self.config.model_dir}: {e}") from e
            self._model = model.eval()
        return self._model


def check_model_dir(model_dir: Path | None) -> None:
    """Fail early (before any video is decoded) when the weights directory is absent or incomplete."""
    if model_dir is None:
        raise ExtractError(f"--depth model needs local weights: {HOW_TO_GET_DEPTH}")
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ExtractError(f"depth model directory {model_dir} does not exist; {HOW_TO_GET_DEPTH}")
    missing = [] if (model_dir / "config.json").is_file() else ["config.json"]
    if not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise ExtractError(f"depth model directory {model_dir} lacks {', '.join(missing)}; {HOW_TO_GET_DEPTH}")


def check_scale(config: DepthModelConfig, *, has_sensor_depth: bool) -> None:
    """Fail before any decoding when a relative model will have no metric reference (no sensor depth to take the
    median from and no --depth-median): read from the checkpoint's config.json, without loading the model."""
    check_model_dir(config.model_dir)
    path = Path(config.model_dir) / "config.json"
    try:
        kind = json.loads(path.read_text()).get("depth_estimation_type", "relative")
    except (OSError, json.JSONDecodeError) as e:
        raise ExtractError(f"{path}: not a readable JSON config ({e})") from e
    if kind == "relative" and not has_sensor_depth and config.median_depth is None:
        raise ExtractError(
            f"{config.model_dir} is a relative-depth model and the dataset stores no depth: give the scene's median "
            "depth in metres with --depth-median M (e.g. 0.6 for a table top seen from the head)"
        )


def _reference_median(sensor: np.ndarray | None, median_depth: float | None) -> float | None:
    if sensor is not None:
        first = sensor[0]
        valid = first[np.isfinite(first) & (first > 0)]
        if valid.size:
            return float(np.median(valid))
    return median_depth


def _multiple_of_14(x: float) -> int:
    return max(14, int(round(x / 14)) * 14)
