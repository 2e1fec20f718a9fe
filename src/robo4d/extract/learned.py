"""`--tracker learned`: the learned point tracker (see `learned_model`) over whole clips, and its shipped weights.

Long clips are tracked in windows of S frames that overlap by O frames: the first window starts every track at
its query; each next window starts O frames before the previous one ended, takes those O estimates as settled
("anchored") and starts its new frames at the last settled estimate. The last window is shifted back to end on
the last frame, so every window is full (a clip shorter than S is one window of its own length).

Each window correlates only its new frames (the overlap's correlation volumes are kept). With `refine`, each new
frame's estimate of a point competes with Lucas-Kanade and with geometric carries of its query (its neighbourhood,
the frame's planes, the rigid scene), and the candidate whose patch best matches the query patch seeds the next
window (`refine`).

Weights ship inside the package (`weights/learned_tracker.safetensors`, with `learned_tracker.json` beside it
holding the network config and how they were trained); `load_tracker_weights` checks every key both ways.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from robo4d.extract.errors import ExtractError
from robo4d.extract.learned_model import STRIDE, LearnedTrackerConfig, TrackerNet
from robo4d.extract.refine import Refiner
from robo4d.nn.state_dict import load_strict

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = "learned_tracker.safetensors"
CARD_FILE = "learned_tracker.json"  # {"config": {...}, "training": {...}}


@dataclass(frozen=True, kw_only=True)
class LearnedConfig:
    """Where the learned tracker's weights come from and how its output is read."""

    weights: Path | None = None  # directory with learned_tracker.{safetensors,json}; None: the shipped weights
    visibility_threshold: float = 0.5  # a point is visible where sigmoid(logit) exceeds this
    iters: int | None = None  # refinement iterations per window (None: as trained); fewer is faster
    # Refinement: per new frame, the network's estimate competes with Lucas-Kanade and with the query carried by its
    # neighbourhood, the frame's planes and the rigid scene, on similarity to the query patch, before it seeds the
    # next window (see `refine.Refiner`); an LK that moves further than `refine_max_px` (network pixels) is dropped.
    refine: bool = False
    refine_max_px: float = 8.0

    def __post_init__(self) -> None:
        if not 0 < self.visibility_threshold < 1:
            raise ValueError(f"LearnedConfig.visibility_threshold must be in (0, 1), got {self.visibility_threshold}")
        if self.iters is not None and self.iters < 1:
            raise ValueError(f"LearnedConfig.iters must be >= 1 or None, got {self.iters}")
        if self.refine_max_px <= 0:
            raise ValueError(f"LearnedConfig.refine_max_px must be > 0, got {self.refine_max_px}")

    @property
    def weights_dir(self) -> Path:
        return WEIGHTS_DIR if self.weights is None else Path(self.weights)

    def build(self) -> LearnedTracker:
        net = load_tracker_weights(self.weights_dir)
        if self.iters is not None:  # the iterations share their weights: the count is a run-time choice
            net.config = replace(net.config, iters=self.iters)
        refine_max_px = self.refine_max_px if self.refine else None
        return LearnedTracker(net, visibility_threshold=self.visibility_threshold, refine_max_px=refine_max_px)


def save_tracker_weights(net: TrackerNet, folder: Path, *, training: dict) -> None:
    """Write weights + card (config, training provenance) into `folder`."""
    import safetensors.torch

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    safetensors.torch.save_file(state, str(folder / WEIGHTS_FILE))
    card = {"config": asdict(net.config), "training": training}
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")


def check_weights(folder: Path) -> None:
    """Cheap check before any work: both files are present."""
    for name in (WEIGHTS_FILE, CARD_FILE):
        if not (Path(folder) / name).is_file():
            raise ExtractError(
                f"{Path(folder) / name}: not found; --tracker-weights must be a folder holding {WEIGHTS_FILE} and "
                f"{CARD_FILE} (made by `robo4d tracker train`), or omit it to use the weights shipped with robo4d"
            )


def weights_record(config: LearnedConfig) -> dict:
    """What identifies the tracker in an extraction's settings: the weights' content, not their path."""
    import hashlib

    digest = hashlib.sha256((config.weights_dir / WEIGHTS_FILE).read_bytes()).hexdigest()[:16]
    record = {"weights_sha256": digest, "visibility_threshold": config.visibility_threshold, "iters": config.iters}
    if config.refine:  # recorded only when on, so extractions made before the option keep their settings
        record["refine_max_px"] = config.refine_max_px
        # the design: network, LK from t-1, local, plane and second plane's candidates (+ LK each), the rigid scene's
        # carry; output: the agreeing candidates' mean, its offset from the plane's carry smoothed over frames
        record["refine"] = "best-of-9+mean+smooth"
    return record


def read_card(folder: Path) -> dict:
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise ExtractError(f"{path}: learned tracker card is missing (expected beside {WEIGHTS_FILE})")
    return json.loads(path.read_text())


def load_tracker_weights(folder: Path) -> TrackerNet:
    """TrackerNet from a weights folder; every saved key must match the network's, and no key may be absent."""
    import safetensors.torch

    folder = Path(folder)
    check_weights(folder)
    path = folder / WEIGHTS_FILE
    card = read_card(folder)
    known = {f.name for f in fields(LearnedTrackerConfig)}
    unknown = sorted(set(card.get("config", {})) - known)
    if unknown:
        raise ExtractError(f"{folder / CARD_FILE}: unknown config fields {unknown}")
    net = TrackerNet(LearnedTrackerConfig(**card["config"]))
    state = safetensors.torch.load_file(str(path))
    load_strict(net, state, source=str(path), error=ExtractError)
    return net.eval()


def window_starts(num_frames: int, window: int, overlap: int) -> list[int]:
    """First frame of each window (see the module docstring)."""
    if num_frames <= window:
        return [0]
    starts, step = [0], window - overlap
    while starts[-1] + window < num_frames:
        starts.append(min(starts[-1] + step, num_frames - window))
    return starts


class LearnedTracker:
    """The `PointTracker` protocol over `TrackerNet`; frames are resized so the short side is `short_side`."""

    def __init__(
        self, net: TrackerNet, *, visibility_threshold: float = 0.5, refine_max_px: float | None = None
    ) -> None:
        self.net = net.eval()
        self.logit_threshold = float(np.log(visibility_threshold / (1 - visibility_threshold)))
        self.refine_max_px = refine_max_px

    @torch.no_grad()
    def track(self, frames: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from robo4d.extract.trackers import _check_inputs, _inside

        _check_inputs(frames, queries)
        t_len, height, width = frames.shape[:3]
        if len(queries) == 0:  # as Lucas-Kanade answers: nothing to track
            return np.zeros((t_len, 0, 2), np.float32), np.zeros((t_len, 0), bool)
        frames_r, scale = _resize(frames, self.net.config.short_side)  # (T, h, w, 3), (2,) new/old
        q = torch.from_numpy(queries.astype(np.float32) * scale)  # (N, 2) in resized pixels
        uv, logits = self.track_resized(torch.from_numpy(frames_r), q)
        uv_np = uv.numpy() / scale  # (T, N, 2)
        uv_np[0] = queries
        visible = (logits.numpy() > self.logit_threshold) & _inside(uv_np, height, width)
        visible[0] = _inside(queries, height, width)
        return uv_np.astype(np.float32), visible

    @torch.no_grad()
    def track_resized(self, frames: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (T, H, W, 3) uint8 at the network's scale, queries (N, 2) -> uv (T, N, 2), logits (T, N)."""
        net, c = self.net, self.net.config
        t_len, n = len(frames), len(queries)
        align = None if self.refine_max_px is None else Refiner(frames, queries, self.refine_max_px)
        fmaps = torch.cat([net.features(frames[i : i + 16]) for i in range(0, t_len, 16)])  # (T, C, h, w)
        qfeat = net.query_features(fmaps[:1], queries[None])  # (1, N, C)
        uv = queries[None].repeat(t_len, 1, 1)  # (T, N, 2)
        logits = torch.zeros(t_len, n)
        levels = net.feature_levels(fmaps)  # per level (T, C, h_l, w_l)
        volumes: list[torch.Tensor] = []  # per level (S, N, h_l, w_l): the previous window's correlations
        # Two windows' volumes per level, allocated once and used in turn: fresh buffers of this size (tens of MB)
        # cost page faults every window.
        buffers = [[f.new_empty(min(c.window, t_len), n, *f.shape[-2:]) for _ in range(2)] for f in levels]
        done, prev = 1, (0, 0)  # frames [0, done) hold settled estimates; prev: the last window's frame range
        for k, start in enumerate(window_starts(t_len, c.window, c.overlap)):
            stop = min(start + c.window, t_len)
            init = uv[start:stop].clone()
            init[done - start :] = uv[done - 1]  # new frames start where the track was last seen settled
            anchored = torch.arange(start, stop) < done
            # Frames shared with the previous window keep their correlation volumes; only new frames are correlated.
            reuse = max(0, min(prev[1], stop) - start) if prev[1] > start >= prev[0] else 0
            pyramid = []
            for lvl, feats in enumerate(levels):
                volume = buffers[lvl][k % 2][: stop - start]
                if reuse:
                    volume[:reuse] = volumes[lvl][start - prev[0] : start - prev[0] + reuse]
                net.correlate(feats[start + reuse : stop], qfeat[0], out=volume[reuse:])
                pyramid.append(volume)
            volumes, prev = pyramid, (start, stop)
            steps, window_logits = net.refine([v.view(-1, 1, *v.shape[-2:]) for v in pyramid], init[None],
                                              anchored[None])  # fmt: skip
            estimate = steps[-1][0] if align is None else align(steps[-1][0], start, done)
            uv[start:stop] = torch.where(anchored[:, None, None], uv[start:stop], estimate)
            logits[start:stop] = torch.where(anchored[:, None], logits[start:stop], window_logits[0])
            done = stop
        logits[0] = torch.inf
        return (uv if align is None else align.finish(uv)), logits


def _resize(frames: np.ndarray, short_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize so the short side is `short_side` and both sides are multiples of the encoder stride."""
    import cv2

    h, w = frames.shape[1:3]
    s = short_side / min(h, w)
    new_h, new_w = (max(STRIDE, round(h * s / STRIDE) * STRIDE), max(STRIDE, round(w * s / STRIDE) * STRIDE))
    scale = np.array([new_w / w, new_h / h], np.float32)
    if (new_h, new_w) == (h, w):
        return frames, scale
    out = np.stack([cv2.resize(f, (new_w, new_h), interpolation=cv2.INTER_AREA) for f in frames])
    return out, scale
