"""Frozen-feature cache: computed once, rows by global frame index, float16 error bound, invalid entries."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from robo4d.nn.encoders import build_image_encoder
from robo4d.nn.feature_cache import META_FILE, TOKENS_FILE, FeatureCache, FeatureCacheError

SIZE = 64  # small frames keep EfficientNet-Lite0 fast: 2 x 2 = 4 tokens x 1280


class SyntheticFrames:
    """A FrameSource of random frames; episodes may be yielded in any order (rows follow `indices`)."""

    def __init__(self, lengths: list[int], *, identity: str = "synthetic-v1", seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.identity = identity
        self.num_frames = sum(lengths)
        self.frames = rng.integers(0, 256, (self.num_frames, SIZE, SIZE, 3), dtype=np.uint8)
        starts = np.cumsum([0, *lengths])
        self.slices = [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
        self.reads = 0

    def episodes(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for indices in reversed(self.slices):
            self.reads += 1
            yield indices, self.frames[indices]


@pytest.fixture(scope="module")
def encoder():
    return build_image_encoder("efficientnet-lite0", image_size=SIZE)


def test_tokens_match_the_encoder_within_float16_error(tmp_path: Path, encoder) -> None:
    source = SyntheticFrames([3, 5])
    tokens = FeatureCache(tmp_path).features(source, "ego", encoder, batch_size=4, progress=False)
    assert isinstance(tokens, np.memmap) and not tokens.flags.writeable
    assert tokens.shape == (8, encoder.num_tokens, encoder.dim) == (8, 4, 1280) and tokens.dtype == np.float16
    exact = encoder.encode(torch.from_numpy(source.frames)).numpy()  # (8, 4, 1280) float32
    # float16 keeps 11 significant bits: relative error <= 2^-11 per value (ReLU6 features: absolute <= 6 * 2^-11);
    # 1e-5 absorbs float32 differences between batch compositions (the cache encoded 4 + 1 + 3 frames).
    err = np.abs(tokens.astype(np.float32) - exact)
    assert np.all(err <= np.abs(exact) * 2.0**-11 + 1e-5)
    assert err.max() <= 6 * 2.0**-11


def test_second_call_reads_the_cache_without_encoding(tmp_path: Path, encoder, monkeypatch) -> None:
    source = SyntheticFrames([4, 2])
    cache = FeatureCache(tmp_path)
    first = np.array(cache.features(source, "ego", encoder, progress=False))
    monkeypatch.setattr(encoder, "encode", lambda images: pytest.fail("re-encoded a cached frame"))
    again = cache.features(source, "ego", encoder, progress=False)
    np.testing.assert_array_equal(again, first)
    assert source.reads == 2  # one pass over the two episodes, at build time only
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers


def test_key_follows_dataset_camera_and_encoder(tmp_path: Path, encoder) -> None:
    cache = FeatureCache(tmp_path)
    source = SyntheticFrames([2])
    other_data = SyntheticFrames([2], identity="synthetic-v2", seed=1)
    other_size = build_image_encoder("efficientnet-lite0", image_size=2 * SIZE)
    entries = {
        cache.entry(source, "ego", encoder).directory,
        cache.entry(other_data, "ego", encoder).directory,
        cache.entry(source, "front", encoder).directory,
        cache.entry(source, "ego", other_size).directory,
    }
    assert len(entries) == 4
    a = cache.features(source, "ego", encoder, progress=False)
    b = cache.features(other_data, "ego", encoder, progress=False)
    assert not np.array_equal(a, b)


def test_corrupt_entry_is_rebuilt_with_a_warning_or_refused(tmp_path: Path, encoder, caplog) -> None:
    cache = FeatureCache(tmp_path)
    source = SyntheticFrames([3])
    good = np.array(cache.features(source, "ego", encoder, progress=False))
    directory = cache.entry(source, "ego", encoder).directory
    np.save(directory / TOKENS_FILE, np.zeros((2, 4, 1280), np.float16))  # wrong shape
    with pytest.raises(FeatureCacheError, match=r"tokens.npy holds float16 \(2, 4, 1280\)"):
        cache.features(source, "ego", encoder, progress=False, rebuild_invalid=False)
    with caplog.at_level(logging.WARNING):
        rebuilt = cache.features(source, "ego", encoder, progress=False)
    assert "rebuilding" in caplog.text
    np.testing.assert_array_equal(rebuilt, good)

    meta = json.loads((directory / META_FILE).read_text())
    (directory / META_FILE).write_text(json.dumps(meta | {"encoder": "something-else"}))
    with pytest.raises(FeatureCacheError, match="field 'encoder'"):
        cache.features(source, "ego", encoder, progress=False, rebuild_invalid=False)
    (directory / TOKENS_FILE).write_bytes((directory / TOKENS_FILE).read_bytes()[:200])  # truncated
    (directory / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(FeatureCacheError, match="tokens.npy unreadable"):
        cache.features(source, "ego", encoder, progress=False, rebuild_invalid=False)


class BrokenFrames(SyntheticFrames):
    def __init__(self, indices: list[np.ndarray]) -> None:
        super().__init__([10])
        self.num_frames = 4  # declared rows; the frames array is longer so bad indices reach the cache
        self.slices = indices


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([np.arange(3)], "never yielded 1"),
        ([np.array([0, 1]), np.array([1, 2])], "repeat"),
        ([np.array([0, 1, 2, 9])], "outside 0..3"),
    ],
)
def test_incomplete_or_inconsistent_sources_fail_and_leave_nothing(tmp_path, encoder, indices, message) -> None:
    with pytest.raises(FeatureCacheError, match=message):
        FeatureCache(tmp_path).features(BrokenFrames(indices), "ego", encoder, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_lookup_pickles_as_a_path_and_returns_float32_rows(tmp_path: Path, encoder) -> None:
    source = SyntheticFrames([2, 3])
    cache = FeatureCache(tmp_path)
    lookup = cache.lookup(source, "ego", encoder, progress=False)
    table = cache.features(source, "ego", encoder, progress=False)
    rows = lookup(np.array([[4, 0], [1, 1]]))
    assert rows.shape == (2, 2, 4, 1280) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[0, 0], table[4].astype(np.float32))
    clone = pickle.loads(pickle.dumps(lookup))
    assert len(pickle.dumps(lookup)) < 1000  # the path, not the table
    np.testing.assert_array_equal(clone(np.array([3])), lookup(np.array([3])))


def test_reads_a_lerobot_dataset_through_the_reader(tmp_path: Path, encoder) -> None:
    from robo4d.data import reader
    from robo4d.data.features import Feature
    from robo4d.data.writer import DatasetWriter
    from robo4d.types import image_key

    rng = np.random.default_rng(0)
    key = image_key("ego")
    writer = DatasetWriter(
        tmp_path / "ds",
        fps=10,
        features={key: Feature(dtype="video", shape=(SIZE, SIZE, 3), names=("height", "width", "channels"))},
        robot_type=None,
    )
    # The first episode is long enough for x264 to emit packets (its mp4 exists on disk) before the second.
    for length in (45, 4):
        writer.add_episode({key: rng.integers(0, 256, (length, SIZE, SIZE, 3), dtype=np.uint8)}, task="wave")
    dataset = reader.Dataset(writer.finalize())
    tokens = FeatureCache(tmp_path / "cache").features(dataset, "ego", encoder, progress=False)
    assert tokens.shape == (49, 4, 1280)
    decoded = dataset.read_episode(1, [key])[key]  # frames as the reader decodes them (lossy video)
    exact = encoder.encode(torch.from_numpy(decoded)).numpy()
    np.testing.assert_allclose(tokens[45:].astype(np.float32), exact, atol=6 * 2.0**-11 + 1e-5, rtol=0)

    # Read through a camera map (dataset camera "ego" as the policy's "front"), the same entry serves.
    from robo4d.train.camera_map import CameraMappedDataset

    view = CameraMappedDataset(dataset, {"ego": "front"}, root=dataset.root)
    entries = sorted((tmp_path / "cache").iterdir())
    again = FeatureCache(tmp_path / "cache").features(view, "front", encoder, progress=False)
    assert sorted((tmp_path / "cache").iterdir()) == entries and np.array_equal(again, tokens)


class MeanColour:
    """A frozen encoder that is not an image-token encoder: (B, H, W, 3) -> (B, 3) mean colour per frame."""

    name, feature_shape = "mean-colour-v1", (3,)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().mean(dim=(1, 2)) / 255.0


def test_serves_any_frozen_encoder_keyed_by_its_name(tmp_path: Path, encoder) -> None:
    source = SyntheticFrames([2, 3])
    cache = FeatureCache(tmp_path)
    colours = cache.features(source, "ego", MeanColour(), progress=False)
    assert colours.shape == (5, 3)
    np.testing.assert_allclose(colours, source.frames.mean(axis=(1, 2)) / 255.0, atol=2.0**-11)
    lookup = cache.lookup(source, "ego", MeanColour(), progress=False)
    assert lookup(np.array([[4, 0]])).shape == (1, 2, 3)
    cache.features(source, "ego", encoder, progress=False)  # another encoder: its own entry beside
    metas = [json.loads((p / META_FILE).read_text()) for p in tmp_path.iterdir()]
    assert sorted(m["encoder"] for m in metas) == sorted([encoder.name, "mean-colour-v1"])
