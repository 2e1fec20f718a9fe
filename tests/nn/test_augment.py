"""Training augmentation served through the feature cache: the pool, the pixel transform, per-window draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robo4d.nn.augment import (
    CROP_SCALE,
    JITTER,
    Augmentation,
    AugmentedEncoder,
    AugmentedLookup,
    augmentation_pool,
    augmented_lookup,
    is_wrist,
)
from robo4d.nn.feature_cache import FeatureCache

IDENTITY = Augmentation(0.0, 0.0, 1.0, 1.0, 1.0, 1.0)


def test_the_pool_is_seeded_its_crops_fit_the_frame_and_keep_the_release_area() -> None:
    pool = augmentation_pool(64, crop=True)
    assert pool == augmentation_pool(64, crop=True) and pool != augmentation_pool(64, crop=True, seed=1)
    for a in pool:
        assert 0 <= a.top and a.top + a.height <= 1 + 1e-9 and 0 <= a.left and a.left + a.width <= 1 + 1e-9
        assert CROP_SCALE[0] - 1e-9 <= a.height * a.width <= CROP_SCALE[1] + 1e-9
        assert abs(a.brightness - 1) <= JITTER and abs(a.contrast - 1) <= JITTER
    assert len({a.tag for a in pool}) == 64  # every copy is its own cache entry
    whole = augmentation_pool(8, crop=False)
    assert all((a.top, a.left, a.height, a.width) == (0, 0, 1, 1) for a in whole)
    with pytest.raises(ValueError, match="copies >= 1, got 0"):
        augmentation_pool(0, crop=True)


def test_only_wrist_cameras_escape_the_crop() -> None:
    assert is_wrist("wrist") and is_wrist("observation.images.left_wrist") and not is_wrist("front")


def test_apply_crops_then_resizes_and_changes_brightness_and_contrast() -> None:
    frames = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    frames[:, :, 4:] = 200  # left half black, right half bright
    assert torch.equal(IDENTITY.apply(frames), frames)
    left = Augmentation(0.0, 0.0, 1.0, 0.5, 1.0, 1.0).apply(frames)
    assert left.shape == frames.shape and int(left.max()) == 0  # the crop is the black half, resized to 8x8
    right = Augmentation(0.0, 0.5, 1.0, 0.5, 1.0, 1.0).apply(frames)
    assert int(right.min()) == 200
    darker = Augmentation(0.0, 0.0, 1.0, 1.0, 0.5, 1.0).apply(frames)
    assert int(darker.max()) == 100
    flat = Augmentation(0.0, 0.0, 1.0, 1.0, 1.0, 0.0).apply(frames)  # zero contrast: every pixel at the mean
    assert int(flat.max()) - int(flat.min()) <= 1
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\) uint8 frames, got torch.float32"):
        IDENTITY.apply(frames.float())


class _Mean:
    """A frozen 'encoder' whose one token is the frame's mean colour."""

    name, num_tokens, dim = "mean-colour", 1, 3

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().mean(dim=(1, 2))[:, None]  # (B, 1, 3)


class _Frames:
    identity, num_frames = "augment-frames-v1", 6

    def episodes(self):
        rng = np.random.default_rng(0)
        yield np.arange(6), rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)


def test_each_window_reads_one_copy_drawn_with_torchs_rng(tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    lookup = augmented_lookup(cache, _Frames(), "front", _Mean(), copies=4)
    assert len(lookup.copies) == 4 and len(list(tmp_path.iterdir())) == 4  # one cache entry per copy
    plain = cache.features(_Frames(), "front", _Mean())
    tables = [copy(np.arange(6)) for copy in lookup.copies]
    assert all(not np.allclose(t, plain) for t in tables)  # every copy is augmented
    window = np.array([1, 2, 3])
    torch.manual_seed(0)
    draws = [lookup(window) for _ in range(20)]
    for got in draws:  # every frame of a window comes from the same copy
        assert any(np.array_equal(got, t[window]) for t in tables)
    assert len({next(i for i, t in enumerate(tables) if np.array_equal(d, t[window])) for d in draws}) > 1
    torch.manual_seed(0)
    assert all(np.array_equal(a, lookup(window)) for a in draws)  # the trainer's seed fixes the draws


def test_augmented_encoder_is_cached_apart_and_reproducible(tmp_path) -> None:
    a = augmentation_pool(1, crop=True)[0]
    enc = AugmentedEncoder(_Mean(), a)
    assert enc.name.startswith("mean-colour+aug-") and enc.feature_shape == (1, 3)
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (2, 16, 16, 3), dtype=np.uint8))
    assert torch.equal(enc.encode(frames), _Mean().encode(a.apply(frames)))
    with pytest.raises(ValueError, match="at least one cached copy"):
        AugmentedLookup([])
