"""An extraction that keeps (almost) no visible points warns loudly, or is refused, instead of exiting 0."""

import json

import numpy as np
import pytest
from extract_fixtures import pinhole, translating_clip

from robo4d import cli, types
from robo4d.data.features import Feature
from robo4d.data.reader import Dataset
from robo4d.data.writer import DatasetWriter
from robo4d.extract import runner
from robo4d.extract.errors import ExtractError
from robo4d.extract.visibility import META_FIELD, VisibilityThresholds

SIZE, T = 32, 48


def _write(root, clips):
    features = {
        types.image_key("ego"): Feature(dtype="video", shape=(SIZE, SIZE, 3)),
        types.depth_key("ego"): Feature(dtype="uint16", shape=(SIZE, SIZE), names=("height", "width")),
        types.intrinsics_key("ego"): Feature(dtype="float32", shape=(3, 3)),
    }
    writer = DatasetWriter(root, fps=10, features=features, robot_type=None)
    for frames in clips:
        writer.add_episode(
            {
                types.image_key("ego"): frames,
                types.depth_key("ego"): np.full((T, SIZE, SIZE), 1.0, np.float32),
                types.intrinsics_key("ego"): np.broadcast_to(pinhole(SIZE, 40.0), (T, 3, 3)),
            },
            task="wave",
        )
    return writer.finalize()


def _noise(seed):
    """Independent noise frames: nothing to follow, so every point is lost after the query frame."""
    return np.random.default_rng(seed).integers(0, 256, (T, SIZE, SIZE, 3), dtype=np.uint8)


def test_tracking_failure_exits_2_with_one_line_and_keeps_the_shards(tmp_path, capsys):
    root = _write(tmp_path / "noise", [_noise(0), _noise(1)])
    argv = ["extract", "tracks", "--dataset", str(root), "--camera", "ego", "--grid", "4"]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err[-1:]) == 1 and "Traceback" not in "".join(err)
    assert "camera 'ego': only" in err[-1] and "of point-frames are visible (--min-visible 0.05)" in err[-1]
    assert "tracking failed on episodes 0 (" in err[-1] or "tracking failed on episodes 1 (" in err[-1]
    assert types.points_key("ego") not in Dataset(root).features  # nothing written
    assert runner.collect_shards(root, "ego", 2).files  # the work is kept

    cli.main([*argv, "--min-visible", "0"])  # accepted on purpose: merged from the kept shards, with a warning
    err = capsys.readouterr().err
    assert "WARNING" in err and "2 of 2 episode(s) under --warn-visible 0.15" in err
    meta = json.loads((root / types.ROBO4D_JSON).read_text())[META_FIELD]["ego"]
    assert meta["fail_below"] == 0 and meta["visible_fraction"] < 0.05 and set(meta["low_episodes"]) == {"0", "1"}


def test_one_failed_episode_among_good_ones_is_named_in_a_warning(tmp_path, capsys):
    clips = [translating_clip(T, SIZE, (0.5, 0.25), seed=0), _noise(2), translating_clip(T, SIZE, (0.25, 0.5), seed=1)]
    root = _write(tmp_path / "mixed", clips)
    cli.main(["extract", "tracks", "--dataset", str(root), "--camera", "ego", "--grid", "4"])
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and "camera 'ego'" in warning[0] and "1 of 3 episode(s)" in warning[0]
    assert ": 1 (" in warning[0]  # episode 1, the noise
    report = Dataset(root).robo4d_meta[META_FIELD]["ego"]
    assert report["visible_fraction"] > 0.3 and list(report["low_episodes"]) == ["1"]
    assert report["warn_below"] == 0.15


def test_thresholds_are_checked():
    with pytest.raises(ExtractError, match="0 <= --min-visible <= --warn-visible <= 1"):
        VisibilityThresholds(warn_below=0.1, fail_below=0.2)
