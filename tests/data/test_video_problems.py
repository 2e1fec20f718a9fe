"""Videos that do not match the metadata: missing files (and a video/ vs videos/ mix-up), another resolution."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from data_fixtures import CAM, FPS, H, W

from robo4d import cli, types
from robo4d.data.errors import DatasetError
from robo4d.data.reader import Dataset
from robo4d.data.video import VideoDecoders

VIDEO = types.image_key(CAM)


@pytest.fixture
def copy(dataset_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dataset_root, tmp_path / "copy"))


def _video_files(root: Path) -> list[Path]:
    return sorted((root / "videos").rglob("*.mp4"))


def test_info_lists_missing_videos_instead_of_failing(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gone = _video_files(copy)[-1]
    gone.unlink()
    with pytest.raises(DatasetError, match="video file of 'observation.images.front' is missing"):
        Dataset(copy)  # training still refuses it
    cli.main(["data", "info", str(copy)])
    out = capsys.readouterr().out
    assert "episodes  4" in out and "frames    " in out  # the summary is still there
    assert "PROBLEMS  1 video file(s)" in out and f"{gone}: video file of {VIDEO!r} is missing" in out


def test_video_folder_misnamed_gets_a_hint(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (copy / "videos").rename(copy / "video")
    with pytest.raises(DatasetError, match=r"found .*/video/ instead: .*under videos/; rename it"):
        Dataset(copy)
    cli.main(["data", "info", str(copy)])
    out = capsys.readouterr().out
    assert "PROBLEMS  2 video file(s)" in out and out.count("rename it") == 2


def test_resolution_other_than_declared_is_an_error(copy: Path) -> None:
    info_path = copy / types.INFO_JSON
    info = json.loads(info_path.read_text())
    info["features"][VIDEO]["shape"] = [H + 2, W, 3]  # the mp4s stay H x W
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=rf"is {H}x{W} \(HxW\) but meta/info.json declares {H + 2}x{W}"):
        Dataset(copy)
    # Reading past the open-time check (as `data info` opens it): every decoded frame is checked as well.
    ds = Dataset(copy, check_videos=False)
    with pytest.raises(DatasetError, match=rf"file frame 0 \(episode frame 0\) decodes to {H}x{W} .* {H + 2}x{W}"):
        ds.read_episode(0, [VIDEO])


def test_decoder_names_file_frame_and_both_shapes(dataset_root: Path) -> None:
    ds = Dataset(dataset_root)
    path = ds.video_file(1, VIDEO)
    start = float(ds.episode_meta(1)[f"videos/{VIDEO}/from_timestamp"])
    expected = rf"{path}: file frame \d+ \(episode frame 3\) decodes to {H}x{W}.*{H}x{W + 2}"
    with pytest.raises(DatasetError, match=expected):
        VideoDecoders().decode(path, fps=FPS, from_timestamp=start, frame_indices=[3], expected_hw=(H, W + 2))
