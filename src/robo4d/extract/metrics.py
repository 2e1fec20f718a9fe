"""Track quality against ground truth: TAP-Vid's 2D metrics and 3D end-point errors.

TAP-Vid (Doersch et al., 2022) defines its pixel thresholds (1, 2, 4, 8, 16) on videos resized to 256x256, and
skips the query frame. We follow that exactly by rescaling both predicted and true positions to a 256x256 image
before thresholding, so a 1 px threshold at 128x128 is half a native pixel. Positions are scored over the
point-frames visible in ground truth whatever the prediction says about visibility (TAP-Vid's delta^x);
the Jaccard metric additionally punishes wrong visibility.
"""

from __future__ import annotations

import numpy as np

TAPVID_THRESHOLDS_PX = (1, 2, 4, 8, 16)  # at 256x256
TAPVID_SIZE = 256
EPE_THRESHOLDS_M = (0.01, 0.02, 0.05)


def tapvid_2d(
    pred_uv: np.ndarray,
    pred_visible: np.ndarray,
    gt_uv: np.ndarray,
    gt_visible: np.ndarray,
    *,
    image_size: tuple[int, int],
    query_frame: int | None = 0,
) -> dict[str, float]:
    """TAP-Vid metrics. Several clips can be stacked along T after dropping their query frames (query_frame=None).

    pred_uv, gt_uv (T, N, 2) pixels; pred_visible, gt_visible (T, N) bool; image_size (H, W).
    Returns delta_<x>px, delta_avg, jaccard_<x>px, average_jaccard, occlusion_accuracy (fractions in [0, 1]).
    """
    height, width = image_size
    scale = np.array([TAPVID_SIZE / width, TAPVID_SIZE / height])
    dist = np.linalg.norm((pred_uv - gt_uv) * scale, axis=-1)  # (T, N) in 256x256 pixels
    evaluated = np.ones(gt_visible.shape, bool)
    if query_frame is not None:
        evaluated[query_frame] = False
    gt_vis = gt_visible & evaluated
    pred_vis = pred_visible & evaluated
    out: dict[str, float] = {}
    deltas, jaccards = [], []
    for thr in TAPVID_THRESHOLDS_PX:
        close = dist < thr
        delta = _ratio((close & gt_vis).sum(), gt_vis.sum())
        true_pos = (close & gt_vis & pred_vis).sum()
        false_pos = (pred_vis & ~(gt_vis & close)).sum()  # claimed visible, but occluded or too far
        false_neg = (gt_vis & ~(pred_vis & close)).sum()  # visible, but claimed occluded or too far
        jaccard = _ratio(true_pos, true_pos + false_pos + false_neg)
        out[f"delta_{thr}px"], out[f"jaccard_{thr}px"] = delta, jaccard
        deltas.append(delta)
        jaccards.append(jaccard)
    out["delta_avg"] = float(np.mean(deltas))
    out["average_jaccard"] = float(np.mean(jaccards))
    out["occlusion_accuracy"] = _ratio(((pred_visible == gt_visible) & evaluated).sum(), evaluated.sum())
    return out


def epe_3d(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """3D end-point error (metres) over the point-frames in `mask`. pred, gt (T, N, 3); mask (T, N) bool.

    Returns median_m, mean_m, within_<c>cm fractions and count (number of point-frames scored). With an empty
    mask the errors are NaN (JSON null after `json.dumps` via `finite_or_none`): there is nothing to score.
    """
    err = np.linalg.norm(pred - gt, axis=-1)[mask]  # (M,)
    out: dict[str, float] = {"count": float(err.size)}
    out["median_m"] = float(np.median(err)) if err.size else float("nan")
    out["mean_m"] = float(err.mean()) if err.size else float("nan")
    for thr in EPE_THRESHOLDS_M:
        out[f"within_{round(thr * 100)}cm"] = _ratio((err < thr).sum(), err.size)
    return out


def moving_points(world_points: np.ndarray, visible: np.ndarray, *, min_motion_m: float = 0.01) -> np.ndarray:
    """(N,) bool: points whose world position, over their visible frames, moves more than `min_motion_m`
    from where it first was — i.e. points on moving bodies, not on the static scene seen by a moving camera.

    world_points (T, N, 3) world frame; visible (T, N) bool.
    """
    first = np.where(visible.any(0), visible.argmax(0), 0)  # (N,)
    start = world_points[first, np.arange(world_points.shape[1])]  # (N, 3)
    motion = np.linalg.norm(world_points - start[None], axis=-1)  # (T, N)
    return (np.where(visible, motion, 0.0) > min_motion_m).any(0)


def project(points: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pixels (continuous convention) of camera-frame points. points (T, N, 3), intrinsics (T, 3, 3) -> (T, N, 2)."""
    proj = np.einsum("tij,tnj->tni", intrinsics, points)  # (T, N, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        return proj[..., :2] / proj[..., 2:3]


def finite_or_none(metrics: dict[str, float]) -> dict[str, float | None]:
    """NaN is not JSON: report 'nothing to score' as null."""
    return {k: (v if np.isfinite(v) else None) for k, v in metrics.items()}


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")
