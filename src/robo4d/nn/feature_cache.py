"""Frozen-encoder features computed once per frame of a dataset camera and kept on disk.

ARM4R's release re-ran its frozen ViT for every sample at every step; here the features of each frame are
computed once and training reads rows of a memory map by the dataset's global frame `index`. Any frozen
per-frame encoder is served (`FrameEncoder`: image tokens, patch pixels, a frozen latent-action or
depth encoder): entries are keyed by encoder name + camera + dataset identity.

Layout (cache_dir defaults to $ROBO4D_CACHE_DIR, else ~/.cache/robo4d/features):
`<cache_dir>/<camera>--<encoder name>--<key>/` holding `tokens.npy` ((num_frames, *feature_shape) float16)
and `meta.json` (what was encoded: dataset identity, camera, encoder name, shape, format version). The key
hashes the same fields, so a changed dataset, encoder, weights or resolution gets a fresh entry. The camera
is the dataset's own name: a dataset read through a `--camera-map` (train.camera_map) shares entries with
the same dataset read without one. An entry is
built in a temporary sibling directory and renamed into place only when complete, so a crash never leaves a
half-written entry. An entry whose files disagree with its metadata is rebuilt (with a warning) or
refused, never used.

float16 halves the size; its relative rounding error is at most 2^-11 (~4.9e-4) per value, far below the
variation between frames. Values beyond float16's range (65504) are refused rather than stored as inf.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from tqdm import tqdm

from robo4d.types import INDEX, INFO_JSON, ROBO4D_JSON, image_key

FORMAT_VERSION = 1
TOKENS_FILE = "tokens.npy"
META_FILE = "meta.json"
DTYPE = np.float16
F16_MAX = float(np.finfo(np.float16).max)

CACHE_DIR_ENV = "ROBO4D_CACHE_DIR"

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """$ROBO4D_CACHE_DIR, else ~/.cache/robo4d/features: outside datasets, which are published read-only."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "robo4d" / "features")


class FeatureCacheError(RuntimeError):
    """A cache entry or its frame source is inconsistent; the message names the file and field."""


class FrameEncoder(Protocol):
    """A frozen per-frame encoder the cache can serve (no grad, deterministic). An `ImageEncoder` (`num_tokens`
    L and `dim` C, feature shape (L, C)) is one; others declare `feature_shape` instead."""

    name: str  # identifies architecture + weights + input resolution: part of the cache key

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, H, W, 3) uint8 -> (B, *feature_shape) float."""
        ...


def feature_shape(encoder: Any) -> tuple[int, ...]:
    """Per-frame output shape of a frozen encoder: its `feature_shape`, else (num_tokens, dim)."""
    shape = getattr(encoder, "feature_shape", None)
    return tuple(int(n) for n in shape) if shape is not None else (int(encoder.num_tokens), int(encoder.dim))


@runtime_checkable
class FrameSource(Protocol):
    """The frames of one camera of one dataset, as the cache reads them."""

    identity: str  # changes whenever any frame could have changed (part of the cache key)
    num_frames: int  # rows of the token table: global frame indices run over 0 .. num_frames - 1

    def episodes(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per episode: (global frame indices (T,) int64, frames (T, H, W, 3) uint8)."""
        ...


def dataset_identity(root: str | Path, camera: str) -> str:
    """A fingerprint of a LeRobot dataset as far as one camera's frames go: meta/info.json and
    meta/robo4d.json contents plus path, size and mtime of every data and video file of that camera. Cheap
    (no video bytes are hashed); touching or copying files only costs a recompute, never a stale hit."""
    root = Path(root)
    digest = hashlib.sha256()
    for name in (INFO_JSON, ROBO4D_JSON):
        path = root / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"<absent>")
    for sub in ("data", f"videos/{image_key(camera)}"):
        for path in sorted((root / sub).rglob("*")):
            if path.is_file():
                st = path.stat()
                digest.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class DatasetFrames:
    """`FrameSource` over a `robo4d.data.reader.Dataset` camera (`.root`, `.num_episodes`, `.num_frames`,
    `.read_episode(ep, keys) -> {key: array}`), or over a camera-mapped view of one (its `source_camera`
    names the dataset's own camera, whose files the identity covers)."""

    def __init__(self, dataset: Any, camera: str) -> None:
        self.dataset = dataset
        self.key = image_key(camera)
        self.camera = dataset.source_camera(camera) if hasattr(dataset, "source_camera") else camera
        self.identity = dataset_identity(dataset.root, self.camera)
        self.num_frames = int(dataset.num_frames)

    def episodes(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for ep in range(self.dataset.num_episodes):
            data = self.dataset.read_episode(ep, [self.key, INDEX])
            yield np.asarray(data[INDEX], dtype=np.int64), np.asarray(data[self.key])


@dataclass(frozen=True, kw_only=True)
class CacheEntry:
    """Where one (dataset camera, encoder) feature table lives and what it must contain."""

    directory: Path
    meta: dict[str, Any]  # the expected meta.json content

    @property
    def tokens_path(self) -> Path:
        return self.directory / TOKENS_FILE

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.meta["shape"])  # (num_frames, *feature_shape)


class FeatureCache:
    """Feature tables of frozen per-frame encoders under one directory (safe to share between runs)."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def entry(self, source: FrameSource, camera: str, encoder: FrameEncoder) -> CacheEntry:
        meta = {
            "format_version": FORMAT_VERSION,
            "dataset_identity": source.identity,
            "camera": camera,
            "encoder": encoder.name,
            "shape": [source.num_frames, *feature_shape(encoder)],
            "dtype": np.dtype(DTYPE).name,
        }
        key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
        readable = f"{camera}--{encoder.name}".replace("/", "_").replace(":", "_").replace("@", "_")
        return CacheEntry(directory=self.cache_dir / f"{readable}--{key}", meta=meta)

    def features(
        self,
        dataset: Any,
        camera: str,
        encoder: FrameEncoder,
        *,
        batch_size: int = 64,
        progress: bool = True,
        rebuild_invalid: bool = True,
    ) -> np.ndarray:
        """(num_frames, *feature_shape) float16 read-only memory map of `encoder`'s output for every frame of
        `camera`, row = global frame `index`. `dataset` is a `robo4d.data.reader.Dataset` (or a camera-mapped
        view of one) or any `FrameSource`. Computed on first use; an invalid entry is rebuilt with a warning
        (or raises if not `rebuild_invalid`)."""
        source = dataset if isinstance(dataset, FrameSource) else DatasetFrames(dataset, camera)
        entry = self.entry(source, getattr(source, "camera", camera), encoder)
        if entry.directory.exists():
            problem = _validate(entry)
            if problem is None:
                return np.load(entry.tokens_path, mmap_mode="r")
            if not rebuild_invalid:
                raise FeatureCacheError(f"feature cache {entry.directory}: {problem}; delete it to recompute")
            log.warning("feature cache %s: %s; rebuilding it", entry.directory, problem)
            shutil.rmtree(entry.directory)
        self._build(entry, source, encoder, batch_size=batch_size, progress=progress)
        return np.load(entry.tokens_path, mmap_mode="r")

    def lookup(
        self, dataset: Any, camera: str, encoder: FrameEncoder, *, batch_size: int = 64, progress: bool = True
    ) -> TokenLookup:
        """A picklable `indices -> (..., *feature_shape) float32` function over the table (built if needed),
        the shape `Policy.frame_sources` returns."""
        table = self.features(dataset, camera, encoder, batch_size=batch_size, progress=progress)
        return TokenLookup(Path(table.filename), table.shape)

    def _build(
        self, entry: CacheEntry, source: FrameSource, encoder: FrameEncoder, *, batch_size: int, progress: bool
    ) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=f".{entry.directory.name}.tmp-"))
        try:
            table = np.lib.format.open_memmap(tmp / TOKENS_FILE, mode="w+", dtype=DTYPE, shape=entry.shape)
            written = np.zeros(entry.shape[0], dtype=bool)
            for indices, frames in tqdm(
                source.episodes(), desc=f"encoding {entry.meta['camera']}", disable=not progress
            ):
                _check_episode(indices, frames, written, where=entry.directory.name)
                for start in range(0, len(indices), batch_size):
                    rows = indices[start : start + batch_size]
                    tokens = encoder.encode(torch.from_numpy(frames[start : start + batch_size]))  # (b, *shape)
                    table[rows] = _to_float16(tokens.cpu().numpy(), encoder.name)
                written[indices] = True
            if not written.all():
                missing = np.flatnonzero(~written)
                raise FeatureCacheError(
                    f"frame source for {entry.directory.name} declared {entry.shape[0]} frames but never yielded "
                    f"{missing.size} of them (first: {missing[:5].tolist()})"
                )
            table.flush()
            del table
            (tmp / META_FILE).write_text(json.dumps(entry.meta, indent=2))
            # A complete entry appears in one rename; a concurrent builder that finished first wins.
            try:
                os.rename(tmp, entry.directory)
            except OSError:
                if _validate(entry) is not None:
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


def _check_episode(indices: np.ndarray, frames: np.ndarray, written: np.ndarray, *, where: str) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise FeatureCacheError(f"{where}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if indices.shape != (len(frames),):
        raise FeatureCacheError(f"{where}: {len(frames)} frames but indices of shape {indices.shape}")
    if len(indices) and (indices.min() < 0 or indices.max() >= len(written)):
        raise FeatureCacheError(
            f"{where}: frame index {int(indices.min())}..{int(indices.max())} outside 0..{len(written) - 1}"
        )
    if np.unique(indices).size != indices.size or written[indices].any():
        raise FeatureCacheError(f"{where}: frame indices repeat (first: {int(indices[0])}); each must appear once")


def cached_precision(tokens: torch.Tensor) -> torch.Tensor:
    """Fresh tokens rounded exactly as the cache stores them (float16, round to nearest even), as float32.
    Inference applies it so a served policy reads the values its training read; only the camera frames
    themselves still differ (raw at serving, h264-decoded in training: see benchmarks/parity.py)."""
    return tokens.to(torch.float16).float()


def _to_float16(tokens: np.ndarray, encoder_name: str) -> np.ndarray:
    if not np.isfinite(tokens).all() or np.abs(tokens).max(initial=0.0) > F16_MAX:
        raise FeatureCacheError(f"encoder {encoder_name} produced non-finite tokens or values beyond float16 range")
    return tokens.astype(DTYPE)


def _validate(entry: CacheEntry) -> str | None:
    """None if the entry holds exactly what its key promises, else what is wrong with it."""
    meta_path = entry.directory / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return f"{META_FILE} unreadable ({e})"
    for field, value in entry.meta.items():
        if meta.get(field) != value:
            return f"{META_FILE} field {field!r} is {meta.get(field)!r}, expected {value!r}"
    try:
        table = np.load(entry.tokens_path, mmap_mode="r")
    except (OSError, ValueError) as e:
        return f"{TOKENS_FILE} unreadable ({e})"
    if table.shape != entry.shape or table.dtype != DTYPE:
        return f"{TOKENS_FILE} holds {table.dtype} {table.shape}, expected {np.dtype(DTYPE).name} {entry.shape}"
    return None


class TokenLookup:
    """Rows of a cached feature table by global frame index. Pickles as its path (a numpy memmap would pickle
    its whole content), so DataLoader workers each open the file once, lazily."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path = path
        self.shape = shape  # (num_frames, *feature_shape)
        self._table: np.ndarray | None = None

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        """indices: (...) int global frame indices -> (..., *feature_shape) float32."""
        if self._table is None:
            self._table = np.load(self.path, mmap_mode="r")
        return self._table[np.asarray(indices, dtype=np.int64)].astype(np.float32)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "shape": self.shape, "_table": None}
