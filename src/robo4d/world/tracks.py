"""Exact ground-truth 3D tracks of a query grid, from the simulator's body poses.

On frame 0 each query pixel (the same GxG grid of cell centres that `robo4d extract tracks` uses, row-major)
is lifted with the rendered depth at that point (bilinear between pixel centres on a smooth surface, else the
pixel containing it) and attached to the body the segmentation
shows there. Every later frame moves that point rigidly with its body and expresses it in the camera frame
of that frame (metres, OpenCV). A point is visible when it projects inside the image, lies in front of the
camera and agrees with the rendered depth within `depth_tolerance` (so occluders hide it).
Query pixels that see nothing on frame 0 (no depth return) have no 3D point: they are stored at the origin
and never visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo4d.extract.queries import grid_queries

NO_DEPTH = 0.0  # stored depth of pixels that hit nothing (the far plane), as a depth sensor's "no return"
FAR_PLANE_M = 50.0  # rendered depth beyond this is the far plane, not a surface


def to_sensor_depth(depth: np.ndarray) -> np.ndarray:
    """Rendered depth (H, W) metres -> what a depth sensor reports: NO_DEPTH where no surface was hit."""
    return np.where(depth < FAR_PLANE_M, depth, NO_DEPTH).astype(np.float32)


def unproject(uv: np.ndarray, z: np.ndarray, k: np.ndarray) -> np.ndarray:
    """uv (N, 2) pixels + z-depth (N,) -> (N, 3) camera-frame points."""
    x = (uv[:, 0] - k[0, 2]) / k[0, 0] * z
    y = (uv[:, 1] - k[1, 2]) / k[1, 1] * z
    return np.stack([x, y, z], axis=-1)


def project(points: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) pixels (u, v); z must be positive."""
    z = points[:, 2]
    return np.stack([k[0, 0] * points[:, 0] / z + k[0, 2], k[1, 1] * points[:, 1] / z + k[1, 2]], axis=-1)


@dataclass(frozen=True)
class Anchors:
    """Query points attached to bodies on frame 0."""

    body: np.ndarray  # (N,) int body id (-1: no surface on frame 0)
    local: np.ndarray  # (N, 3) float64 point in its body's frame

    @property
    def valid(self) -> np.ndarray:
        return self.body >= 0


def anchor_queries(
    grid: int,
    depth: np.ndarray,  # (H, W) float32 metres, NO_DEPTH where nothing was hit
    body_ids: np.ndarray,  # (H, W) int body id per pixel (-1: none)
    k: np.ndarray,  # (3, 3)
    world_from_cam: np.ndarray,  # (4, 4)
    body_pos: np.ndarray,  # (nbody, 3)
    body_mat: np.ndarray,  # (nbody, 3, 3)
) -> Anchors:
    h, w = depth.shape
    uv = grid_queries(h, w, grid).astype(np.float64)  # (N, 2)
    ix = np.minimum(uv[:, 0].astype(np.int64), w - 1)
    iy = np.minimum(uv[:, 1].astype(np.int64), h - 1)
    z = depth[iy, ix].astype(np.float64)
    # Queries rarely sit on pixel centres: on a slanted surface the containing pixel's depth puts the point
    # millimetres off the surface. Interpolate bilinearly where the 2x2 neighbourhood is one smooth surface.
    x0 = np.clip(np.floor(uv[:, 0] - 0.5).astype(np.int64), 0, w - 2)
    y0 = np.clip(np.floor(uv[:, 1] - 0.5).astype(np.int64), 0, h - 2)
    fx = np.clip(uv[:, 0] - 0.5 - x0, 0.0, 1.0)
    fy = np.clip(uv[:, 1] - 0.5 - y0, 0.0, 1.0)
    corners = np.stack([depth[y0, x0], depth[y0, x0 + 1], depth[y0 + 1, x0], depth[y0 + 1, x0 + 1]], -1)
    bodies = np.stack([body_ids[y0, x0], body_ids[y0, x0 + 1], body_ids[y0 + 1, x0], body_ids[y0 + 1, x0 + 1]], -1)
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1)
    smooth = (
        np.all(bodies == body_ids[iy, ix][:, None], axis=-1)
        & np.all(corners > NO_DEPTH, axis=-1)
        & (np.ptp(corners, axis=-1) < 0.02 * z)
    )
    z = np.where(smooth, np.sum(weights * corners, axis=-1), z)
    body = np.where(z > NO_DEPTH, body_ids[iy, ix], -1)
    cam = unproject(uv, z, k)  # (N, 3)
    world = cam @ world_from_cam[:3, :3].T + world_from_cam[:3, 3]
    b = np.maximum(body, 0)
    local = np.einsum("nji,nj->ni", body_mat[b], world - body_pos[b])  # R^T (p - x)
    return Anchors(body=body, local=np.where(body[:, None] >= 0, local, 0.0))


def track_frame(
    anchors: Anchors,
    body_pos: np.ndarray,  # (nbody, 3)
    body_mat: np.ndarray,  # (nbody, 3, 3)
    world_from_cam: np.ndarray,  # (4, 4)
    k: np.ndarray,  # (3, 3)
    depth: np.ndarray,  # (H, W) metres, NO_DEPTH where nothing was hit
    *,
    depth_tolerance: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points (N, 3) float32 and visibility (N,) bool of the anchors on one frame."""
    b = np.maximum(anchors.body, 0)
    world = np.einsum("nij,nj->ni", body_mat[b], anchors.local) + body_pos[b]  # (N, 3)
    rot, t = world_from_cam[:3, :3].astype(np.float64), world_from_cam[:3, 3].astype(np.float64)
    cam = (world - t) @ rot  # R^T (p - t), row-wise
    cam = np.where(anchors.valid[:, None], cam, 0.0)
    h, w = depth.shape
    z = cam[:, 2]
    in_front = z > 1e-3
    uv = project(np.where(in_front[:, None], cam, [0.0, 0.0, 1.0]), k)
    inside = in_front & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    ix = np.clip(uv[:, 0].astype(np.int64), 0, w - 1)
    iy = np.clip(uv[:, 1].astype(np.int64), 0, h - 1)
    # Depth of the 2x2 pixel-centre neighbourhood around the point: a surface point agrees with at least one
    # of them even on steep slopes, an occluded one with none.
    x0 = np.clip(np.floor(uv[:, 0] - 0.5).astype(np.int64), 0, w - 2)
    y0 = np.clip(np.floor(uv[:, 1] - 0.5).astype(np.int64), 0, h - 2)
    near = np.stack([depth[y0, x0], depth[y0, x0 + 1], depth[y0 + 1, x0], depth[y0 + 1, x0 + 1], depth[iy, ix]], -1)
    agrees = np.any(np.abs(near - z[:, None]) < depth_tolerance + 0.01 * z[:, None], axis=-1)
    visible = anchors.valid & inside & agrees
    return cam.astype(np.float32), visible


def lift_errors(
    points: np.ndarray,  # (T, N, 3) ground-truth camera-frame points
    visible: np.ndarray,  # (T, N) bool
    depth: np.ndarray,  # (T, H, W) stored depth, metres
    k: np.ndarray,  # (T, 3, 3) intrinsics
) -> np.ndarray:
    """3D distance (metres) between each visible ground-truth point and its pixel lifted again with the stored
    depth through the extraction's own sampler (bilinear): how exactly ground truth and depth agree. Points
    whose depth taps include a no-return pixel are left out. Returns (M,)."""
    from robo4d.extract.lift import sample_depth, unproject

    z = np.where(points[..., 2] > 0, points[..., 2], 1.0)  # never-seen points sit at the origin (not visible)
    uv = np.stack([k[:, None, 0, 0] * points[..., 0] / z + k[:, None, 0, 2],
                   k[:, None, 1, 1] * points[..., 1] / z + k[:, None, 1, 2]], axis=-1)  # fmt: skip
    lifted_z = sample_depth(depth, uv)  # (T, N), NaN where a tap has no depth
    errors = np.linalg.norm(unproject(uv, lifted_z, k) - points, axis=-1)  # (T, N)
    return errors[visible & np.isfinite(lifted_z)]
