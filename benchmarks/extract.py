"""Quality and speed of the track extractor's 2D trackers, side by side on the same videos; prints JSON.

    python benchmarks/extract.py                      # generates default-preset human videos at 128 and 256 px
    python benchmarks/extract.py --dataset D [D ...]  # or scores existing datasets with ground truth
    python benchmarks/extract.py --dataset D --real ../shared/data/real/apple.mp4   # + a real clip (no truth)
    python benchmarks/extract.py ... --weights new=RUN/weights --only fb_on learned new new_refine  # other weights

Trackers: LK with its forward-backward check on ("fb_on") and off ("fb_off"), and the learned tracker with
its shipped weights ("learned"; "learned_3iters" with one refinement iteration fewer). Per dataset and
tracker: TAP-Vid 2D metrics (pixel thresholds defined at 256x256; positions are rescaled to 256x256 before
thresholding, see extract/metrics.py), 3D end-point error in metres
over point-frames visible in ground truth AND predicted visible (an invisible prediction makes no 3D claim;
`coverage` says how many ground-truth-visible point-frames were claimed), for all points and for points on
moving bodies (world-frame motion > 1 cm while visible), and speed on one core (OpenCV and torch limited to
one thread): frames/s and points*frames/s of tracking + depth + lifting, excluding video decoding.

On a real clip (no ground truth) each tracker follows a 36x36 grid from frame 0, and at frames 1, 10, 21 and
the last it reports the fraction of the grid still tracked (claimed visible) and the median similarity
(normalised cross-correlation of 9x9 grey patches at a 128-pixel short side) between each tracked point's
patch and its query patch on frame 0: a drift signal, since a point that slid off its surface point stops
looking like it. LK runs at the clip's native resolution (its best case), the learned tracker at its own.
The clip's own ceiling comes with it ("ceiling"): for each grid point, the best similarity its query patch
reaches anywhere in the frame (every whole-pixel position, then quarter-pixel steps around the 5 best), so no
tracker's point scores above it (to within that sub-pixel search). Reported per checked frame: the share of the
grid that can reach 0.8 at all, and the highest median similarity any 60% of the grid can have (the 70th
percentile of the per-point bests): a tracker can only meet "60% tracked, median >= 0.8" where that is >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from robo4d import types
from robo4d.extract.depth import SensorDepth
from robo4d.extract.learned import LearnedConfig
from robo4d.extract.metrics import epe_3d, finite_or_none, moving_points, project, tapvid_2d
from robo4d.extract.pipeline import EpisodeInput, LiftConfig, extract_episode
from robo4d.extract.queries import grid_queries
from robo4d.extract.trackers import LKConfig, PointTracker

CAMERA = types.CAM_EGO
SETTINGS = {
    "fb_on": LKConfig(),
    "fb_off": LKConfig(fb_threshold=None),
    "learned": LearnedConfig(),
    "learned_3iters": LearnedConfig(iters=3),  # fewer refinement iterations: faster, a little less exact
    "learned_refine": LearnedConfig(refine=True),  # + best of 9, agreeing mean, smoothing (see extract/learned.py)
}
REAL_FRAMES = (1, 10, 21)  # plus the clip's last frame
PATCH = 9  # side of the similarity patch, pixels at a 128-pixel short side


def generate(out: Path, size: int, episodes: int) -> Path:
    """Human videos of the default preset (its 8 tasks, its 36x36 ground-truth grid), `episodes` per task."""
    root = out / f"human_{size}"
    cmd = [sys.executable, "-m", "robo4d.cli", "world", "human", "--preset", "default", "--out", str(root),
           "--image-size", str(size), "--episodes", str(episodes)]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return root


def score_dataset(root: Path, max_episodes: int) -> dict:
    from robo4d.data.reader import Dataset

    dataset = Dataset(root)
    grid = dataset.robo4d_meta["world"]["grid"]  # queries must be the ground truth's, point for point
    keys = [types.image_key(CAMERA), types.depth_key(CAMERA), types.intrinsics_key(CAMERA),
            types.extrinsics_key(CAMERA), types.gt_points_key(CAMERA), types.gt_points_visible_key(CAMERA)]  # fmt: skip
    episodes = [dataset.read_episode(e, keys) for e in range(min(dataset.num_episodes, max_episodes))]
    height, width = episodes[0][types.image_key(CAMERA)].shape[1:3]
    result: dict = {"dataset": str(root), "episodes": len(episodes), "image": [height, width], "grid": grid}
    for name, config in SETTINGS.items():
        result[name] = score_setting(episodes, config.build(), LiftConfig(grid=grid))
    return result


def score_setting(episodes: list[dict], tracker: PointTracker, lift: LiftConfig) -> dict:
    pred_uv, pred_vis, gt_uv, gt_vis, pred_xyz, gt_xyz, moving = [], [], [], [], [], [], []
    seconds = frames = 0.0
    for data in episodes:
        ep = EpisodeInput(
            source="bench",
            frames=data[types.image_key(CAMERA)],
            intrinsics=data[types.intrinsics_key(CAMERA)],
            depth=data[types.depth_key(CAMERA)],
        )
        start = time.process_time()  # CPU time: the machine may be shared, one thread is one core
        tracks = extract_episode(ep, tracker=tracker, depth_source=SensorDepth(), config=lift)
        seconds += time.process_time() - start
        frames += len(ep.frames)
        k = np.broadcast_to(ep.intrinsics, (len(ep.frames), 3, 3))
        gt = data[types.gt_points_key(CAMERA)]  # (T, N, 3) camera frame
        vis = data[types.gt_points_visible_key(CAMERA)].astype(bool)
        world = np.einsum("tij,tnj->tni", data[types.extrinsics_key(CAMERA)][:, :3, :3], gt)
        world += data[types.extrinsics_key(CAMERA)][:, None, :3, 3]
        # Frame 0 is the query frame (TAP-Vid does not score it); dropping it lets episodes stack along T.
        pred_uv.append(tracks.uv[1:]), pred_vis.append(tracks.visible[1:])
        gt_uv.append(project(gt, k)[1:]), gt_vis.append(vis[1:])
        pred_xyz.append(tracks.points[1:]), gt_xyz.append(gt[1:])
        moving.append(np.broadcast_to(moving_points(world, vis), vis[1:].shape))
    cat = [np.concatenate(x, axis=0) for x in (pred_uv, pred_vis, gt_uv, gt_vis, pred_xyz, gt_xyz, moving)]
    p_uv, p_vis, g_uv, g_vis, p_xyz, g_xyz, mov = cat  # (sum of T-1, N, ...)
    size = episodes[0][types.image_key(CAMERA)].shape[1:3]
    return {
        "2d": tapvid_2d(p_uv, p_vis, g_uv, g_vis, image_size=size, query_frame=None),
        "3d_all": finite_or_none(epe_3d(p_xyz, g_xyz, g_vis & p_vis)),
        "3d_moving": finite_or_none(epe_3d(p_xyz, g_xyz, g_vis & p_vis & mov)),
        "coverage": float((g_vis & p_vis).sum() / max(g_vis.sum(), 1)),
        "moving_point_fraction": float(mov[0].mean()),
        "speed": {"frames_per_s": frames / seconds, "points_frames_per_s": frames * p_vis.shape[1] / seconds},
    }


def read_video(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _grey_small(frames: np.ndarray) -> tuple[np.ndarray, float]:
    import cv2

    scale = 128 / min(frames.shape[1:3])
    size = (round(frames.shape[2] * scale), round(frames.shape[1] * scale))
    grey = [cv2.cvtColor(cv2.resize(f, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY) for f in frames]
    return np.stack(grey).astype(np.float32), scale


def _patch_similarity(grey: np.ndarray, uv: np.ndarray, t: int, mask: np.ndarray) -> float:
    """Median NCC between the patches at uv[t] and uv[0] of the points in `mask` (uv at grey's scale)."""
    import cv2

    scores = []
    for i in np.flatnonzero(mask):
        a = cv2.getRectSubPix(grey[0], (PATCH, PATCH), tuple(map(float, uv[0, i] - 0.5)))
        b = cv2.getRectSubPix(grey[t], (PATCH, PATCH), tuple(map(float, uv[t, i] - 0.5)))
        scores.append(_ncc(a, b))
    return float(np.median(scores)) if scores else float("nan")


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two equal-size patches (0 where either is flat)."""
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 1e-6 else 0.0


def _best_similarity(grey: np.ndarray, query: np.ndarray, t: int) -> float:
    """The highest NCC of the query patch at `query` (grey's scale) on frame 0 anywhere in frame t."""
    import cv2

    patch = cv2.getRectSubPix(grey[0], (PATCH, PATCH), tuple(map(float, query - 0.5)))
    scores = cv2.matchTemplate(grey[t], patch, cv2.TM_CCOEFF_NORMED)  # whole-pixel positions
    best = float(scores.max())
    for flat in np.argsort(scores.ravel())[-5:]:
        row, col = divmod(int(flat), scores.shape[1])
        for dx in np.arange(-0.75, 0.76, 0.25):
            for dy in np.arange(-0.75, 0.76, 0.25):
                b = cv2.getRectSubPix(grey[t], (PATCH, PATCH), (col + PATCH // 2 + dx, row + PATCH // 2 + dy))
                best = max(best, _ncc(patch, b))
    return best


def real_ceiling(grey: np.ndarray, queries: np.ndarray, checked: list[int]) -> dict:
    """Per checked frame: the share of the grid whose query patch reaches 0.8 anywhere in the frame, and the best
    median similarity of any 60% of the grid (queries at grey's scale)."""
    out: dict = {"reachable_0.8": {}, "best_median_of_60pct": {}}
    for t in checked:
        best = np.array([_best_similarity(grey, q, t) for q in queries])
        out["reachable_0.8"][str(t)] = float((best >= 0.8).mean())
        out["best_median_of_60pct"][str(t)] = float(np.quantile(best, 0.7))
    return out


def score_real(path: Path, grid: int = 36) -> dict:
    frames = read_video(path)
    t_len, height, width = frames.shape[:3]
    grey, scale = _grey_small(frames)
    queries = grid_queries(height, width, grid)
    checked = [t for t in (*REAL_FRAMES, t_len - 1) if t < t_len]
    result: dict = {"video": str(path), "frames": t_len, "image": [height, width], "grid": grid}
    result["ceiling"] = real_ceiling(grey, queries * scale, checked)
    for name, config in SETTINGS.items():
        start = time.process_time()
        uv, visible = config.build().track(frames, queries)
        seconds = time.process_time() - start
        result[name] = {
            "tracked_fraction": {str(t): float(visible[t].mean()) for t in checked},
            "median_patch_similarity": {str(t): _patch_similarity(grey, uv * scale, t, visible[t]) for t in checked},
            "frames_per_s": t_len / seconds,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, nargs="*", help="datasets with ground truth (default: generate)")
    parser.add_argument("--episodes", type=int, default=1, help="generated episodes per default-preset task")
    parser.add_argument("--max-episodes", type=int, default=8)
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="real clips without ground truth")
    parser.add_argument(
        "--weights",
        nargs="*",
        default=[],
        metavar="NAME=DIR",
        help="also score the learned tracker with these weights folders (e.g. a new training run's)",
    )
    parser.add_argument("--only", nargs="*", default=None, help="score only these settings (default: all)")
    args = parser.parse_args()
    for item in args.weights:
        name, sep, folder = item.partition("=")
        if not sep or not (Path(folder) / "learned_tracker.safetensors").is_file():
            parser.error(f"--weights {item!r}: expected NAME=DIR with DIR holding learned_tracker.safetensors")
        SETTINGS[name] = LearnedConfig(weights=Path(folder))
        SETTINGS[f"{name}_refine"] = LearnedConfig(weights=Path(folder), refine=True)
    if args.only is not None:
        unknown = sorted(set(args.only) - set(SETTINGS))
        if unknown:
            parser.error(f"--only {unknown}: unknown settings; known: {sorted(SETTINGS)}")
        for name in list(SETTINGS):
            if name not in args.only:
                del SETTINGS[name]

    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        roots = args.dataset or [generate(Path(tmp), size, args.episodes) for size in (128, 256)]
        results = [score_dataset(r, args.max_episodes) for r in roots]
        results += [score_real(path) for path in args.real]
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
