"""Domain-randomised tracker clips: exact tracks survive the scene changes, degradations keep pixels in place."""

import numpy as np
import pytest

from robo4d.world.randomize import Clip, RandomizeConfig, degrade, generate_clips, load_clip, render_clips


def _clip(t_len: int = 6, size: int = 32) -> Clip:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (t_len, size, size, 3), dtype=np.uint8)
    uv = np.stack(np.meshgrid(np.arange(4, size, 8) + 0.5, np.arange(4, size, 8) + 0.5), -1).reshape(-1, 2)
    uv = np.repeat(uv[None], t_len, 0).astype(np.float32) + np.arange(t_len)[:, None, None]  # 1 px/frame
    return Clip(frames, uv, np.ones(uv.shape[:2], bool))


def test_degrade_keeps_tracks_and_only_hides_points():
    clip = _clip()
    out = degrade(clip, np.random.default_rng(3), RandomizeConfig(max_occluders=3))
    assert out.frames.shape == clip.frames.shape and out.frames.dtype == np.uint8
    assert out.uv is clip.uv  # no degradation moves a pixel
    assert not (out.visible & ~clip.visible).any()  # occluders can only hide


def test_occluders_hide_the_points_they_cover():
    clip = _clip()
    hidden = [(~degrade(clip, np.random.default_rng(s), RandomizeConfig(max_occluders=3)).visible).sum()
              for s in range(6)]  # fmt: skip
    assert max(hidden) > 0


def test_config_is_validated():
    with pytest.raises(ValueError, match="jpeg_quality"):
        RandomizeConfig(jpeg_quality=(90, 20))
    with pytest.raises(ValueError, match="out-of-range"):
        RandomizeConfig(max_stride=0)


def test_rendered_clips_have_exact_tracks_and_resume(tmp_path):
    plain = RandomizeConfig(enabled=False)
    (clip,) = render_clips("door-close-v3", 7, count=1, image_size=48, steps=3, grid=6, config=plain)
    assert clip.frames.shape == (3, 48, 48, 3) and clip.uv.shape == (3, 36, 2) and clip.visible.shape == (3, 36)
    from robo4d.extract.queries import grid_queries

    seen = clip.visible[0]
    assert seen.mean() > 0.8
    assert np.allclose(clip.uv[0, seen], grid_queries(48, 48, 6)[seen], atol=1e-3)  # anchored on the grid

    randomized = RandomizeConfig(max_stride=2)
    paths = generate_clips(tmp_path, count=2, first=0, per_env=2, image_size=48, steps=3, grid=6, config=randomized)
    again = generate_clips(tmp_path, count=2, first=0, per_env=2, image_size=48, steps=3, grid=6, config=randomized)
    assert paths == again and all(p.is_file() for p in paths)
    loaded = load_clip(paths[1])
    assert loaded.frames.shape == (3, 48, 48, 3) and not np.array_equal(loaded.frames[0], clip.frames[0])
