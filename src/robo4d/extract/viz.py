"""Pictures of tracks: an mp4 with points and fading trails drawn on the frames, and a PNG 3D scatter.

Points are coloured by where they start on frame 0 (hue from u, brightness from v), so neighbouring points keep
similar colours and a swap or a jump stands out. Points not visible on a frame are not drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robo4d import types
from robo4d.extract.errors import ExtractError
from robo4d.extract.lift import ARM4R_UV_SCALE
from robo4d.extract.metrics import project

# --key choices (a key prefix without its camera) -> (points key, visibility key) builders.
TRACK_KEYS = {
    types.POINTS_PREFIX.rstrip("."): (types.points_key, types.points_visible_key),
    types.GT_POINTS_PREFIX.rstrip("."): (types.gt_points_key, types.gt_points_visible_key),
}
DRAW_SIZE = 512  # frames are upscaled to about this width so that trails on 128 px video stay legible


def track_colours(uv0: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 3) uint8 RGB from initial positions uv0 (N, 2)."""
    import cv2

    uv0 = np.where(np.isfinite(uv0), uv0, 0.0)  # a point never seen has no pixel: any colour will do
    hsv = np.zeros((len(uv0), 1, 3), np.uint8)
    hsv[:, 0, 0] = np.clip(uv0[:, 0] / width * 179, 0, 179)  # OpenCV hue range is 0..179
    hsv[:, 0, 1] = 220
    hsv[:, 0, 2] = np.clip(255 - uv0[:, 1] / height * 120, 0, 255)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[:, 0]


def draw_tracks(frames: np.ndarray, uv: np.ndarray, visible: np.ndarray, *, trail: int = 10) -> np.ndarray:
    """frames (T, H, W, 3) uint8, uv (T, N, 2) pixels, visible (T, N) -> (T, H', W', 3) uint8 with tracks drawn."""
    import cv2

    t_len, height, width = frames.shape[:3]
    scale = max(1, DRAW_SIZE // width)
    uv = np.where(np.isfinite(uv), uv, 0.0)  # points never seen have no pixel; they are never drawn either
    colours = track_colours(uv[0], width, height).astype(int).tolist()
    pts = np.round(uv * scale * 16).astype(np.int32)  # fixed point with 4 fractional bits (cv2 `shift`)
    radius = max(2, scale)
    out = []
    for t in range(t_len):
        canvas = cv2.resize(frames[t], (width * scale, height * scale), interpolation=cv2.INTER_NEAREST)
        for age in range(min(trail, t), 0, -1):  # oldest first, so newer segments are drawn on top
            overlay = canvas.copy()
            a, b = t - age, t - age + 1
            for i in np.flatnonzero(visible[a] & visible[b]):
                cv2.line(overlay, tuple(pts[a, i]), tuple(pts[b, i]), colours[i], 1, cv2.LINE_AA, shift=4)
            alpha = 1.0 - (age - 1) / trail  # fades with age
            canvas = cv2.addWeighted(overlay, alpha, canvas, 1 - alpha, 0)
        for i in np.flatnonzero(visible[t]):
            cv2.circle(canvas, tuple(pts[t, i]), radius * 16, colours[i], -1, cv2.LINE_AA, shift=4)
        out.append(canvas)
    return np.stack(out)


def scatter_3d(points: np.ndarray, visible: np.ndarray, colours: np.ndarray, path: Path, *, title: str) -> None:
    """PNG of each point's 3D trajectory over its visible frames. points (T, N, 3), visible (T, N)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    rgb = colours / 255.0
    for i in range(points.shape[1]):
        p = points[visible[:, i], i]  # (M, 3)
        if len(p):
            # Camera frame is x right, y down, z forward: plot (x, z, -y) so "up" is up.
            ax.plot(p[:, 0], p[:, 2], -p[:, 1], color=rgb[i], linewidth=0.6, alpha=0.8)
            ax.scatter(p[-1:, 0], p[-1:, 2], -p[-1:, 1], color=rgb[i], s=2)
    ax.set_xlabel("x")
    ax.set_ylabel("z (forward)")
    ax.set_zlabel("-y (up)")
    ax.set_title(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_episode(root: Path, episode: int, camera: str, out: Path, *, key: str, trail: int) -> tuple[Path, Path]:
    """Write <out>/<key>.<cam>_ep<E>.mp4 and .png for one episode; returns both paths."""
    from robo4d.data.reader import Dataset
    from robo4d.data.video import VideoFileWriter
    from robo4d.extract.runner import META_FIELD, check_camera

    dataset = Dataset(root)
    check_camera(dataset, camera)
    if key not in TRACK_KEYS:
        raise ExtractError(f"--key must be one of {', '.join(TRACK_KEYS)}, got {key!r}")
    points_key, visible_key = (build(camera) for build in TRACK_KEYS[key])
    missing = [k for k in (points_key, visible_key) if k not in dataset.features]
    if missing:
        raise ExtractError(f"{root}: no {missing} to draw; run `robo4d extract tracks` first (or pick another --key)")
    keys = [types.image_key(camera), types.intrinsics_key(camera), points_key, visible_key]
    if types.extrinsics_key(camera) in dataset.features:
        keys.append(types.extrinsics_key(camera))
    data = dataset.read_episode(episode, keys)
    settings: dict[str, Any] = {}
    if points_key == types.points_key(camera):
        settings = (dataset.robo4d_meta or {}).get(META_FIELD, {}).get(camera, {})
    points, visible = data[points_key].astype(np.float64), data[visible_key].astype(bool)
    uv, xyz = _pixels_and_camera_points(points, data, camera, settings.get("lift", {}))
    frames = data[types.image_key(camera)]
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{key}.{camera}_ep{episode}"
    drawn = draw_tracks(frames, uv, visible, trail=trail)
    writer = VideoFileWriter(stem.with_suffix(".mp4"), fps=dataset.fps, height=drawn.shape[1], width=drawn.shape[2],
                             crf=18, gop=30)  # fmt: skip
    writer.append(drawn)
    writer.close()
    colours = track_colours(uv[0], frames.shape[2], frames.shape[1])
    scatter_3d(xyz, visible, colours, stem.with_suffix(".png"), title=f"{key}.{camera} episode {episode}")
    return stem.with_suffix(".mp4"), stem.with_suffix(".png")


def _pixels_and_camera_points(
    points: np.ndarray, data: dict[str, np.ndarray], camera: str, lift: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(uv (T, N, 2), camera-frame xyz (T, N, 3)) from stored tracks in any of the formats extract writes."""
    from robo4d.extract.lift import unproject

    intrinsics = np.broadcast_to(data[types.intrinsics_key(camera)], (len(points), 3, 3)).astype(np.float64)
    if lift.get("format") == "uvd":
        uv = points[..., :2] / ARM4R_UV_SCALE
        return uv, unproject(uv, points[..., 2], intrinsics)
    if lift.get("world_frame"):
        camera_from_world = np.linalg.inv(np.broadcast_to(data[types.extrinsics_key(camera)], (len(points), 4, 4)))
        points = np.einsum("tij,tnj->tni", camera_from_world[:, :3, :3], points) + camera_from_world[:, None, :3, 3]
    return project(points, intrinsics), points
