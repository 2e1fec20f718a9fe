"""Small source videos for the import tests, written with PyAV (a plain module, imported by name)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def moving_texture(length: int, height: int, width: int, seed: int = 0, shift: float = 0.5) -> np.ndarray:
    """(T, H, W, 3) uint8: a window sliding over a smooth random texture (trackable), plus the frame number in
    a flat grey top-left block so a test can tell which source frame came out."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.random((height * 2, width * 2)).astype(np.float32), (0, 0), 1.5)
    big = ((big - big.min()) / (big.max() - big.min()) * 255).astype(np.uint8)
    frames = []
    for t in range(length):
        m = np.float32([[1, 0, shift * t - width / 2], [0, 1, 0.5 * shift * t - height / 2]])
        gray = cv2.warpAffine(big, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        frame = np.repeat(gray[..., None], 3, axis=-1)
        frame[:16, :16] = min(255, 8 * t)
        frames.append(frame)
    return np.stack(frames)


def write_mp4(path: Path, frames: np.ndarray, rate: Fraction | int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "10", "bf": "0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def write_frames(folder: Path, frames: np.ndarray) -> Path:
    """Frames as PNGs named so that plain string order would be wrong (frame_2 before frame_10)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{t}.png"), frame[..., ::-1])
    return folder


def frame_number(frame: np.ndarray) -> int:
    """The source frame number painted by moving_texture (lossy-video tolerant)."""
    return int(round(float(frame[4:8, 4:8, 0].mean()) / 8))


def save_tiny_depth_model(path: Path) -> Path:
    """A randomly initialised relative Depth Anything V2 (4-layer, 32-wide Dinov2), saved like a real one."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        image_size=56, patch_size=14, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative",
    )  # fmt: skip
    model = DepthAnythingForDepthEstimation(config)
    model.head.conv3.bias.data.fill_(1.0)  # random weights with a ReLU head: keep outputs positive
    model.save_pretrained(path)
    return path
