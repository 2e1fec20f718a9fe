"""Training and evaluating the learned point tracker (extract/learned*.py) with the one trainer.

Data: folders of world clips (`world.randomize`, rendered once by `robo4d tracker data`: domain-randomised, or
plain with `--plain`); several folders are one pool, so they mix in proportion to their clip counts.
The trainer sees it through a `DataBackend`: each clip is an "episode", and each training window is
    a query frame (clip frame 0, where the grid is anchored) + S consecutive clip frames starting at s,
    `points` tracks sampled among those visible on frame 0 (half of them on moving bodies, which are rare),
    initial estimates as a windowed run would give them: at s = 0 every frame starts at the query; at s > 0
    the first `overlap` frames are "anchored" at the truth plus noise (what a previous window would have left)
    and the rest start at the last anchored estimate. With `anchor_drift_px`, each track's anchors also share one
    offset, as a track that drifted in earlier windows hands on: the loss on the new frames then teaches the
    network to find the point again from its query correlation instead of continuing from where it was left.
The policy wrapper's `compute_loss` is `learned_model.tracking_loss`; after training, the last checkpoint is
exported as a weights folder that `--tracker learned --tracker-weights DIR` (or the package) loads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from robo4d.extract.learned_model import LearnedTrackerConfig, TrackerNet, tracking_loss
from robo4d.extract.trackers import _inside
from robo4d.methods.base import DataSpec, Policy, register_method
from robo4d.types import STATE_NONE, ActionChunk, Observation, PolicyIO

METHOD = "point-tracker"
CLIP_GLOB = "clip_*.npz"
# Batch keys of a training window (internal to this recipe: not dataset features).
FRAMES = "tracker.frames"  # (S, H, W, 3) uint8
QUERY_FRAME = "tracker.query_frame"  # (H, W, 3) uint8
QUERIES = "tracker.queries"  # (N, 2) pixels on the query frame
INIT = "tracker.init"  # (S, N, 2) initial estimates
ANCHORED = "tracker.anchored"  # (S,) bool
TARGET = "tracker.target"  # (S, N, 2) true positions
VISIBLE = "tracker.visible"  # (S, N) bool
VALID = "tracker.valid"  # (S, N) bool: a true position exists (point in front of the camera)
KEYS = (FRAMES, QUERY_FRAME, QUERIES, INIT, ANCHORED, TARGET, VISIBLE, VALID)


@dataclass(frozen=True, kw_only=True)
class TrackerTrainConfig:
    """The tracker network plus how training windows are cut."""

    net: LearnedTrackerConfig = field(default_factory=LearnedTrackerConfig)
    points: int = 256  # tracks per training window
    windows_per_clip: int = 8  # training windows drawn per clip and epoch (random start and points each time)
    anchor_noise_px: float = 1.0  # std of the noise on anchored estimates, pixels
    # Drift: per window, a std s ~ U(0, anchor_drift_px); per track, one offset ~ N(0, s^2) on all its anchors.
    anchor_drift_px: float = 0.0  # 0: off, as the shipped weights were trained (README: what 4 px did)
    first_window_prob: float = 0.3  # share of windows cut at s = 0 (the clip's first window)
    # Camera pan: the world's head camera shakes about a fixed view, so its clips never drift far; real
    # hand-held video pans. A share of windows is warped by a smooth random similarity over clip time.
    pan_prob: float = 0.0  # share of windows warped (0: off, as the first shipped weights were trained)
    pan_speed_px: float = 1.5  # std of the pan velocity per axis, pixels per frame at the clip's size

    def __post_init__(self) -> None:
        if self.points < 1 or self.windows_per_clip < 1 or self.anchor_noise_px < 0 or self.pan_speed_px < 0:
            raise ValueError(f"TrackerTrainConfig has out-of-range values: {self}")
        if self.anchor_drift_px < 0:
            raise ValueError(f"TrackerTrainConfig.anchor_drift_px must be >= 0, got {self.anchor_drift_px}")
        if not 0 <= self.pan_prob <= 1:
            raise ValueError(f"TrackerTrainConfig.pan_prob must be in [0, 1], got {self.pan_prob}")
        if not 0 <= self.first_window_prob <= 1:
            raise ValueError(f"TrackerTrainConfig.first_window_prob must be in [0, 1], got {self.first_window_prob}")


# --- data ----------------------------------------------------------------------------------------------------


class ClipStore:
    """A folder of clip files seen as a dataset by the trainer (`.features`, `.stats`, episode/frame counts)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.paths = sorted(self.root.glob(CLIP_GLOB))
        if not self.paths:
            raise FileNotFoundError(f"{self.root}: no {CLIP_GLOB} files; render them with `robo4d tracker data`")
        self.features = {k: None for k in KEYS}
        self.stats: dict[str, Any] = {}
        self.num_episodes = len(self.paths)
        self.num_frames = self.num_episodes * int(np.load(self.paths[0])["visible"].shape[0])


class ClipWindows(Dataset):
    """Training windows of some clips (see the module docstring); randomness from numpy's global stream, which
    the trainer seeds per worker."""

    def __init__(self, store: ClipStore, *, config: TrackerTrainConfig, episodes: list[int], seq_len: int) -> None:
        self.store, self.config, self.episodes, self.seq_len = store, config, episodes, seq_len

    def __len__(self) -> int:
        return len(self.episodes) * self.config.windows_per_clip

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from robo4d.world.randomize import load_clip

        clip = load_clip(self.store.paths[self.episodes[index // self.config.windows_per_clip]])
        return make_window(clip.frames, clip.uv, clip.visible, self.config, self.seq_len, np.random)


def make_window(
    frames: np.ndarray, uv: np.ndarray, visible: np.ndarray, config: TrackerTrainConfig, seq_len: int, rng: Any
) -> dict[str, torch.Tensor]:
    """One training window from a clip: frames (T, H, W, 3), uv (T, N, 2), visible (T, N)."""
    t_len, height, width = frames.shape[:3]
    s_len = min(seq_len, t_len)
    start = 0 if t_len == s_len or rng.random() < config.first_window_prob else int(rng.randint(1, t_len - s_len + 1))
    valid_all = uv[..., 0] > -1  # (T, N) projected (in front of the camera)
    candidates = np.flatnonzero(visible[0])
    # Points on moving bodies: their motion departs from the clip's median (camera) motion by > 2 px somewhere.
    motion = uv - uv[:1]  # (T, N, 2)
    residual = np.abs(motion - np.median(motion[:, candidates], axis=1, keepdims=True)).max(-1)  # (T, N)
    moving = candidates[(np.where(valid_all, residual, 0)[:, candidates] > 2).any(0)]
    warps = None
    if config.pan_prob and rng.random() < config.pan_prob:
        warps = pan_warps(t_len, height, width, config.pan_speed_px, rng)  # (T, 2, 3), identity at t = 0
        uv = np.where(valid_all[..., None], np.einsum("tij,tnj->tni", warps[:, :, :2], uv) + warps[:, None, :, 2], uv)
        visible = visible & _inside(uv, height, width)
    half = min(len(moving), config.points // 2)
    chosen = rng.choice(moving, half, replace=False) if half else np.zeros(0, int)
    rest = np.setdiff1d(candidates, chosen)
    chosen = np.concatenate([chosen, rng.choice(rest, config.points - half, replace=len(rest) < config.points - half)])
    sl = slice(start, start + s_len)
    target = uv[sl, chosen].astype(np.float32)  # (S, N, 2)
    init = np.repeat(uv[:1, chosen], s_len, 0).astype(np.float32)
    anchored = np.zeros(s_len, bool)
    anchored[0] = True
    if start > 0:
        k = config.net.overlap
        anchored[:k] = True
        noisy = target[:k] + rng.normal(0, config.anchor_noise_px, target[:k].shape).astype(np.float32)
        if config.anchor_drift_px:
            drift = rng.normal(0, rng.uniform(0, config.anchor_drift_px), (1, target.shape[1], 2))  # (1, N, 2)
            noisy = noisy + drift.astype(np.float32)
        init[:k], init[k:] = noisy, noisy[k - 1]
    window_frames = frames[sl]
    if warps is not None:
        window_frames = np.stack([_warp(f, w) for f, w in zip(window_frames, warps[sl], strict=True)])
    window = {
        FRAMES: window_frames, QUERY_FRAME: frames[0], QUERIES: uv[0, chosen].astype(np.float32), INIT: init,
        ANCHORED: anchored, TARGET: target, VISIBLE: visible[sl, chosen], VALID: valid_all[sl, chosen],
    }  # fmt: skip
    if min(height, width) != config.net.short_side:  # the network's own scale, as `LearnedTracker.track` resizes
        from robo4d.extract.learned import _resize

        resized, scale = _resize(np.concatenate([frames[:1], window_frames]), config.net.short_side)
        window[QUERY_FRAME], window[FRAMES] = resized[0], resized[1:]
        for key in (QUERIES, INIT, TARGET):
            window[key] = window[key] * scale
        width = resized.shape[2]
    if rng.random() < 0.5:  # mirror: the world's scenes are not left-right symmetric, real ones are either way
        window = _flip(window, width)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in window.items()}


def pan_warps(t_len: int, height: int, width: int, speed: float, rng: Any) -> np.ndarray:
    """(T, 2, 3) affine maps, clip frame 0's pixels -> frame t's: a similarity about the image centre whose
    translation has a random velocity (std `speed` px/frame per axis) and acceleration, with slow rotation
    (std 0.3 degrees/frame) and zoom (std 0.5%/frame). Identity at t = 0."""
    t = np.arange(t_len, dtype=np.float64)
    velocity, accel = rng.normal(0, speed, 2), rng.normal(0, speed / 20, 2)
    shift = t[:, None] * velocity + 0.5 * t[:, None] ** 2 * accel  # (T, 2)
    angle = np.deg2rad(rng.normal(0, 0.3)) * t
    scale = (1 + rng.normal(0, 0.005)) ** t
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    centre = np.array([width / 2, height / 2])
    linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)  # (T, 2, 2)
    offset = centre - np.einsum("tij,j->ti", linear, centre) + shift  # x' = L x + centre - L centre + shift
    return np.concatenate([linear, offset[:, :, None]], -1).astype(np.float32)


def _warp(frame: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine map in the continuous pixel convention (pixel centres at +0.5), mirrored borders."""
    import cv2

    centred = warp.astype(np.float64).copy()
    centred[:, 2] += centred[:, :2].sum(1) * 0.5 - 0.5  # OpenCV's integer-centred pixel coordinates
    h, w = frame.shape[:2]
    return cv2.warpAffine(frame, centred, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _flip(window: dict[str, np.ndarray], width: int) -> dict[str, np.ndarray]:
    out = dict(window)
    out[FRAMES], out[QUERY_FRAME] = window[FRAMES][:, :, ::-1], window[QUERY_FRAME][:, ::-1]
    for key in (QUERIES, INIT, TARGET):
        out[key] = window[key].copy()
        out[key][..., 0] = width - window[key][..., 0]
    return out


def clip_backend(config: TrackerTrainConfig) -> Any:
    from robo4d.train.loader import DataBackend

    def make_windows(store: ClipStore, *, keys: tuple, seq_len: int, horizon: int, episodes: list[int],
                     frame_sources: dict) -> ClipWindows:  # fmt: skip
        return ClipWindows(store, config=config, episodes=episodes, seq_len=seq_len)

    return DataBackend(open_dataset=ClipStore, make_windows=make_windows)


# --- the trainer's view of the tracker -------------------------------------------------------------------------


@register_method(METHOD, TrackerTrainConfig)
class TrackerPolicy(Policy):
    """The tracker network behind the Policy interface, so the one trainer can fit it; it produces tracks, not
    robot actions (eval/serve refuse it through `io()`)."""

    def __init__(self, config: TrackerTrainConfig) -> None:
        super().__init__()
        self.config = config
        self.net = TrackerNet(config.net)

    def data_spec(self) -> DataSpec:
        return DataSpec(keys=KEYS, seq_len=self.config.net.window, horizon=0,
                        produced_by={k: "robo4d tracker data" for k in KEYS})  # fmt: skip

    def io(self) -> PolicyIO:
        side = self.config.net.short_side
        return PolicyIO(cameras=("video",), image_size=(side, side), state_kind=STATE_NONE, state_dim=0,
                        action_kind="points", action_dim=2, chunk=self.config.net.window)  # fmt: skip

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        # fp32 even where the trainer autocasts (bf16 on CUDA): positions are refined from correlation values at
        # sub-pixel offsets, which bf16's 8-bit mantissa blurs, and the tracker runs in fp32 at inference.
        with torch.autocast(batch[FRAMES].device.type, enabled=False):
            steps, logits = self.net(batch[FRAMES], batch[QUERY_FRAME], batch[QUERIES], batch[INIT], batch[ANCHORED])
        return tracking_loss(steps, logits, batch[TARGET], batch[VISIBLE], batch[VALID])

    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        raise TypeError("the point tracker produces tracks, not actions: use `robo4d extract tracks --tracker learned`")

    def reset(self) -> None:
        """Stateless between clips."""


# --- recipe steps --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    data: tuple[Path, ...]  # folders of clips from `robo4d tracker data` (windows drawn across all clips)
    out: Path  # run directory
    steps: int = 6000
    batch_size: int = 4
    lr: float = 5e-4
    points: int = 256
    num_workers: int = 1
    seed: int = 0
    init_from: Path | None = None  # a tracker checkpoint (or run's stage dir) to fine-tune from; None: from scratch
    pan_prob: float = 0.5  # share of training windows warped by a random camera pan (TrackerTrainConfig)
    anchor_drift_px: float = 0.0  # std bound of the shared offset on anchored estimates (TrackerTrainConfig)
    short_side: int = LearnedTrackerConfig.short_side  # the network's input scale; clips are resized to it


def train(settings: TrainSettings, *, resume: bool, progress: bool = True) -> Path:
    """Fit the tracker with the one trainer, then export the last checkpoint as a weights folder
    (`<out>/weights`); returns that folder."""
    from robo4d.train.optim import OptimConfig
    from robo4d.train.stage import StageConfig
    from robo4d.train.trainer import run_stage
    from robo4d.train.weight_map import load_all

    config = TrackerTrainConfig(net=LearnedTrackerConfig(short_side=settings.short_side), points=settings.points,
                                pan_prob=settings.pan_prob, anchor_drift_px=settings.anchor_drift_px)  # fmt: skip
    init_from = None if settings.init_from is None else str(Path(settings.init_from).resolve())
    stage = StageConfig(
        name="tracker", method=METHOD, policy=config, datasets=tuple(map(str, settings.data)), steps=settings.steps,
        batch_size=settings.batch_size, optim=OptimConfig(lr=settings.lr, warmup_fraction=0.05, grad_clip=1.0),
        val_fraction=0.05, eval_every=max(1, settings.steps // 10), val_batches=4, log_every=20,
        save_every=max(1, settings.steps // 20), num_workers=settings.num_workers, seed=settings.seed,
        init_from=init_from, weight_map=None if init_from is None else load_all(),
    )  # fmt: skip
    result = run_stage(stage, settings.out, resume=resume, progress=progress, backend=clip_backend(config))
    return export(result.checkpoint, settings.out / "weights", data=settings.data)


def export(checkpoint: Path, folder: Path, *, data: tuple[Path, ...]) -> Path:
    """Write a trainer checkpoint's tracker network as a weights folder, with its provenance in the card."""
    from robo4d.extract.learned import save_tracker_weights
    from robo4d.train.checkpoint import load_policy, read_config

    policy = load_policy(checkpoint)
    assert isinstance(policy, TrackerPolicy)
    saved = read_config(checkpoint)
    cards = [d / "clips.json" for d in data]
    training = {
        "checkpoint": str(checkpoint),
        "step": saved["step"],
        "stage": saved["stage"],
        "policy_config": saved["policy_config"],
        "datasets": saved["datasets"],
        "data": [json.loads(c.read_text()) if c.is_file() else None for c in cards],  # one per --data folder
    }
    save_tracker_weights(policy.net, folder, training=training)
    return folder


def write_data_card(out: Path, **settings: Any) -> None:
    """How the clip folder was rendered (copied into the weights card by `export`)."""
    from robo4d.world.randomize import CLIP_SEED_BASE

    card = {**settings, "clip_seed_base": CLIP_SEED_BASE}
    card = {k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in card.items()}
    (out / "clips.json").write_text(json.dumps(card, indent=2, default=str) + "\n")


# --- evaluation ----------------------------------------------------------------------------------------------


def build_tracker(name: str, weights: Path | None = None, iters: int | None = None, refine: bool = False) -> Any:
    """A `PointTracker` by name: "learned" (shipped weights unless `weights`; `iters` refinement iterations,
    None: as trained) or "lk" (the fast baseline)."""
    from robo4d.extract.learned import LearnedConfig
    from robo4d.extract.trackers import LKConfig

    if name == "learned":
        return LearnedConfig(weights=weights, iters=iters, refine=refine).build()
    if name == "lk":
        return LKConfig().build()
    raise ValueError(f"unknown tracker {name!r}; known: learned, lk")


def evaluate_dataset(
    root: Path,
    camera: str,
    *,
    tracker: str,
    weights: Path | None = None,
    episodes: int | None = None,
    iters: int | None = None,
    refine: bool = False,
) -> dict[str, Any]:
    """TAP-Vid metrics of one tracker over a world human dataset's ground truth (query frame 0 = the grid),
    plus CPU time per frame. Clips are pooled point-frame by point-frame (TAP-Vid's averaging)."""
    import time

    from robo4d import types
    from robo4d.data.reader import Dataset
    from robo4d.extract.metrics import project, tapvid_2d
    from robo4d.extract.queries import grid_queries

    dataset = Dataset(root)
    gt_key, vis_key = types.gt_points_key(camera), types.gt_points_visible_key(camera)
    if gt_key not in dataset.features:
        raise ValueError(f"{root}: no {gt_key} (ground truth exists in world human datasets)")
    built = build_tracker(tracker, weights, iters, refine)
    count = dataset.num_episodes if episodes is None else min(episodes, dataset.num_episodes)
    preds, pred_vis, gts, gt_vis = [], [], [], []
    cpu, frames_total = 0.0, 0
    for ep in range(count):
        data = dataset.read_episode(ep, [types.image_key(camera), types.intrinsics_key(camera), gt_key, vis_key])
        frames = data[types.image_key(camera)]
        t_len, height, width = frames.shape[:3]
        points = data[gt_key]  # (T, N, 3)
        grid = round(points.shape[1] ** 0.5)
        k = np.broadcast_to(data[types.intrinsics_key(camera)], (t_len, 3, 3))
        start = time.process_time()
        uv, vis = built.track(frames, grid_queries(height, width, grid))
        cpu += time.process_time() - start
        frames_total += t_len
        preds.append(uv[1:])
        pred_vis.append(vis[1:])
        gts.append(project(points, k)[1:])
        gt_vis.append(data[vis_key][1:].astype(bool))
    metrics = tapvid_2d(np.concatenate(preds), np.concatenate(pred_vis), np.concatenate(gts),
                        np.concatenate(gt_vis), image_size=(height, width), query_frame=None)  # fmt: skip
    by_frame = []  # delta_avg at frame t (t = 1, 2, ...) over the episodes that are that long: how tracks drift
    for t in range(max(len(p) for p in preds)):
        have = [i for i, p in enumerate(preds) if len(p) > t]
        at_t = [np.stack([arrays[i][t] for i in have]) for arrays in (preds, pred_vis, gts, gt_vis)]
        delta = tapvid_2d(*at_t, image_size=(height, width), query_frame=None)["delta_avg"]
        by_frame.append(delta if np.isfinite(delta) else None)
    return {
        "dataset": str(root), "tracker": tracker, "iters": iters, "refine": refine, "episodes": count,
        "frames": frames_total,
        "frames_per_cpu_second": frames_total / max(cpu, 1e-9), **metrics, "delta_avg_by_frame": by_frame,
    }  # fmt: skip


def plot_delta_by_frame(result: dict[str, Any], path: Path) -> None:
    """A PNG of `evaluate_dataset`'s delta_avg per frame, with the pooled delta_avg as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = [t + 1 for t, d in enumerate(result["delta_avg_by_frame"]) if d is not None]
    values = [d for d in result["delta_avg_by_frame"] if d is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    label = result["tracker"] + (" + refine" if result["refine"] else "")
    ax.plot(frames, values, marker=".", label=label)
    ax.axhline(result["delta_avg"], linestyle="--", color="grey", label=f"pooled {result['delta_avg']:.3f}")
    ax.set(xlabel="frame (query frame 0)", ylabel="TAP-Vid delta_avg", ylim=(0, 1), title=str(result["dataset"]))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
