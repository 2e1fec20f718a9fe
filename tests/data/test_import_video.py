"""`robo4d data import-video`: user videos and frame folders -> a human-video dataset extraction can read."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import frame_number, moving_texture, write_frames, write_mp4

from robo4d import cli, types
from robo4d.data import import_video
from robo4d.data.errors import DatasetError
from robo4d.data.import_video import plan_import, run_import
from robo4d.data.reader import Dataset

EGO = types.image_key("ego")
K = types.intrinsics_key("ego")
H, W = 32, 48


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    write_mp4(root / "videos" / "clip_a.mp4", moving_texture(12, H, W, seed=0))
    write_mp4(root / "videos" / "clip_b.mp4", moving_texture(9, H, W, seed=1))
    write_mp4(root / "wide.mp4", moving_texture(6, 40, 64, seed=2))
    write_mp4(root / "long30.mp4", moving_texture(30, H, W, seed=3), rate=30)
    write_frames(root / "frames", moving_texture(11, H, W, seed=4))
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    return root


def _digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_videos_become_a_human_dataset_with_assumed_intrinsics(sources: Path, tmp_path: Path) -> None:
    before = _digest(sources)
    out = tmp_path / "mine"
    cli.main(["data", "import-video", str(sources / "videos"), "--out", str(out), "--task", "stir the pot",
              "--workers", "2"])  # fmt: skip
    ds = Dataset(out)
    assert ds.num_episodes == 2 and [ds.episode_length(e) for e in range(2)] == [12, 9] and ds.fps == 30
    assert set(ds.features) - set(types.DEFAULT_COLUMNS) == {EGO, K} and ds.tasks == ["stir the pot"]
    data = ds.read_episode(0)
    original = moving_texture(12, H, W, seed=0)
    assert data[EGO].shape == (12, H, W, 3) and np.abs(data[EGO].astype(int) - original).mean() < 3
    f = (W / 2) / math.tan(math.radians(import_video.DEFAULT_FOV_DEG) / 2)
    np.testing.assert_allclose(data[K], np.broadcast_to([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], (12, 3, 3)), 1e-5)
    meta = ds.robo4d_meta[import_video.META_FIELD]
    assert meta["intrinsics_assumed"] is True and meta["fov_deg"] == import_video.DEFAULT_FOV_DEG
    names = ("clip_a.mp4", "clip_b.mp4")
    assert [e["source"] for e in meta["episodes"]] == [str(sources / "videos" / n) for n in names]
    assert ds.episode_meta(1)[types.EPISODE_SOURCE].endswith("clip_b.mp4")
    assert _digest(sources) == before  # originals untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no work folder or partial dataset left


def test_frame_folder_needs_fps_and_given_intrinsics_follow_the_resize(sources: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="folder of frames has no frame rate; pass --fps"):
        plan_import([sources / "frames"], out=tmp_path / "f", task="t")
    plan = plan_import([sources / "frames"], out=tmp_path / "f", task="t", fps=15, size=(16, 24),
                       intrinsics="40,41,24,16", workers=1)  # fmt: skip
    ds = Dataset(run_import(plan))
    frames = ds.read_episode(0)[EGO]
    assert ds.fps == 15 and frames.shape == (11, 16, 24, 3)
    assert [frame_number(f) for f in frames] == list(range(11))  # frame_10 comes after frame_9, not after frame_1
    np.testing.assert_allclose(ds.read_frames(0, [0])[K][0], [[20, 0, 12], [0, 20.5, 8], [0, 0, 1]])
    assert ds.robo4d_meta[import_video.META_FIELD]["intrinsics_assumed"] is False


def test_fps_resamples_in_time_and_size_admits_mixed_resolutions(sources: Path, tmp_path: Path) -> None:
    plan = plan_import([sources / "long30.mp4", sources / "wide.mp4"], out=tmp_path / "r", task="t", fps=10,
                       size=(32, 48), workers=1)  # fmt: skip
    ds = Dataset(run_import(plan))
    assert ds.fps == 10 and ds.episode_length(0) == 10 and ds.episode_length(1) == 2
    assert [frame_number(f) for f in ds.read_episode(0)[EGO]] == list(range(0, 30, 3))
    k_wide = ds.read_frames(1, [0])[K][0]  # 64 px wide source with a 60 deg view, shrunk to 48 x 32
    f = 32 / math.tan(math.radians(30))
    np.testing.assert_allclose(k_wide, [[f * 48 / 64, 0, 24], [0, f * 32 / 40, 16], [0, 0, 1]], rtol=1e-5)


def test_task_mapping_files(sources: Path, tmp_path: Path) -> None:
    csv_map = tmp_path / "tasks.csv"
    csv_map.write_text("file,task\nclip_a.mp4,open the jar\nclip_b.mp4,close the jar\n")
    plan = plan_import([sources / "videos"], out=tmp_path / "o", tasks=csv_map)
    assert [s.task for s in plan.sources] == ["open the jar", "close the jar"]
    json_map = tmp_path / "tasks.json"
    json_map.write_text(json.dumps({"clip_b.mp4": "close the jar"}))
    plan = plan_import([sources / "videos"], out=tmp_path / "o", tasks=json_map, task="something else")
    assert [s.task for s in plan.sources] == ["something else", "close the jar"]
    with pytest.raises(DatasetError, match=r"1 input\(s\) are not in --tasks .*clip_a.mp4.*--task TEXT"):
        plan_import([sources / "videos"], out=tmp_path / "o", tasks=json_map)
    json_map.write_text(json.dumps({"clip_b.mp4": "x", "clip_z.mp4": "y"}))
    with pytest.raises(DatasetError, match=r"names files that are not among the inputs: \['clip_z.mp4'\]"):
        plan_import([sources / "videos"], out=tmp_path / "o", tasks=json_map)


BAD = {
    "missing file": (["nope.mp4"], {}, "nope.mp4: no such file or folder"),
    "undecodable": (["broken.mp4"], {}, "broken.mp4: cannot decode this video"),
    "mixed sizes": (["wide.mp4", "long30.mp4"], {}, r"different resolutions \(wide.mp4: 40x64, long30.mp4: 32x48"),
    "bad intrinsics": (["wide.mp4"], {"intrinsics": "500,500,320"}, "--intrinsics must be four positive numbers"),
    "odd size": (["wide.mp4"], {"size": (31, 48)}, "--size must be two positive even numbers"),
    "no task": (["wide.mp4"], {"task": None}, "have no task"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_fail_before_decoding(case: str, sources: Path, tmp_path: Path, monkeypatch) -> None:
    names, options, message = BAD[case]
    monkeypatch.setattr(import_video, "decode_source", lambda *a, **k: pytest.fail("decoded despite bad input"))
    with pytest.raises(DatasetError, match=message):
        plan_import([sources / n for n in names], out=tmp_path / "o", **{"task": "t", **options})


def test_bad_input_from_the_cli_is_one_line(sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "o").mkdir()
    with pytest.raises(SystemExit) as stop:
        cli.main(["data", "import-video", str(sources / "wide.mp4"), "--out", str(tmp_path / "o"), "--task", "t"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err == f"robo4d data import-video: --out {tmp_path / 'o'}: already exists; " \
        "pass --overwrite to replace it\n"  # fmt: skip


def test_interrupted_import_resumes_without_decoding_again(sources: Path, tmp_path: Path, monkeypatch) -> None:
    from robo4d.data.writer import DatasetWriter

    out = tmp_path / "resumed"
    plan = plan_import([sources / "videos", sources / "wide.mp4"], out=out, task="t", size=(32, 48), workers=1)
    decoded: list[str] = []
    real_decode, real_add = import_video.decode_source, DatasetWriter.add_episode

    def counting_decode(source, **kwargs):
        decoded.append(source.path.name)
        yield from real_decode(source, **kwargs)

    def killed_at_episode_2(self, frames, **kwargs):
        if self.num_episodes == 2:
            raise KeyboardInterrupt
        return real_add(self, frames, **kwargs)

    monkeypatch.setattr(import_video, "decode_source", counting_decode)
    monkeypatch.setattr(DatasetWriter, "add_episode", killed_at_episode_2)
    with pytest.raises(KeyboardInterrupt):
        run_import(plan)
    assert not out.exists() and len(list(plan.work_dir.glob("episode_*.json"))) == 3
    monkeypatch.setattr(DatasetWriter, "add_episode", real_add)
    decoded.clear()
    run_import(plan_import([sources / "videos", sources / "wide.mp4"], out=out, task="t", size=(32, 48), workers=1))
    assert decoded == [] and Dataset(out).num_episodes == 3 and not plan.work_dir.exists()
    # Other settings never reuse staged frames.
    run_import(plan_import([sources / "wide.mp4"], out=out, task="t", size=(16, 16), workers=1, overwrite=True))
    assert decoded == ["wide.mp4"] and Dataset(out).read_frames(0, [0])[EGO].shape == (1, 16, 16, 3)


def test_imported_videos_go_through_extraction_with_a_depth_model(
    sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from video_fixtures import save_tiny_depth_model

    model = save_tiny_depth_model(tmp_path / "depth_anything")
    out = tmp_path / "mine"
    cli.main(["data", "import-video", str(sources / "videos" / "clip_a.mp4"), "--out", str(out), "--task", "t"])
    no_scale = ["extract", "tracks", "--dataset", str(out), "--camera", "ego", "--depth", "model",
                "--depth-model-dir", str(model)]  # fmt: skip
    with pytest.raises(SystemExit) as stop:  # a relative model without a metric reference: refused before decoding
        cli.main(no_scale)
    assert stop.value.code == 2 and "--depth-median M" in capsys.readouterr().err
    assert not (out / "extract").exists()
    cli.main(["extract", "tracks", "--dataset", str(out), "--camera", "ego", "--grid", "4", "--depth", "model",
              "--depth-model-dir", str(model), "--depth-median", "1.5"])  # fmt: skip
    ds = Dataset(out)
    data = ds.read_episode(0, [types.points_key("ego"), types.points_visible_key("ego")])
    assert data[types.points_key("ego")].shape == (12, 16, 3) and data[types.points_visible_key("ego")][0].all()
    assert "extract" in ds.robo4d_meta and import_video.META_FIELD in ds.robo4d_meta  # both records kept


def test_imported_videos_feed_video_pretraining_as_they_are(sources: Path, tmp_path: Path) -> None:
    from robo4d.methods.igor.config import preset
    from robo4d.methods.igor.frames import FrameTable

    plan = plan_import([sources / "videos"], out=tmp_path / "mine", task="t", workers=1)
    table = FrameTable(Dataset(run_import(plan)), preset("igor-tiny"))
    assert table.camera == "ego" and table.frames.shape[0] == 12 + 9 and table.goal.shape == (21,)
