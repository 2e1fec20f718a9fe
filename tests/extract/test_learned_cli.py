"""The learned tracker end to end at toy scale: clips -> `tracker train` -> `tracker eval` -> `extract tracks`."""

import json

import numpy as np
import pytest
from extract_fixtures import pinhole, translating_clip

from robo4d import types
from robo4d.data.features import Feature
from robo4d.data.reader import Dataset
from robo4d.data.writer import DatasetWriter
from robo4d.extract import runner
from robo4d.extract.errors import ExtractError
from robo4d.extract.learned import CARD_FILE, WEIGHTS_FILE, read_card
from robo4d.extract.queries import grid_queries
from robo4d.world.randomize import Clip, save_clip

SIZE, T, GRID = 32, 48, 4  # T > 40: the writer needs x264's lookahead flushed (see test_dataset.py)


def _uv(t_len: int, shift: tuple[float, float]) -> np.ndarray:
    return grid_queries(SIZE, SIZE, GRID)[None] + np.arange(t_len)[:, None, None] * np.float32(shift)


@pytest.fixture(scope="module")
def human_root(tmp_path_factory):
    """A world-like human dataset: translating texture, exact ground-truth tracks of the 4x4 grid."""
    root = tmp_path_factory.mktemp("learned") / "human"
    features = {
        types.image_key("ego"): Feature(dtype="video", shape=(SIZE, SIZE, 3)),
        types.depth_key("ego"): Feature(dtype="uint16", shape=(SIZE, SIZE), names=("height", "width")),
        types.intrinsics_key("ego"): Feature(dtype="float32", shape=(3, 3)),
        types.gt_points_key("ego"): Feature(dtype="float32", shape=(GRID * GRID, 3)),
        types.gt_points_visible_key("ego"): Feature(dtype="bool", shape=(GRID * GRID,)),
    }
    writer = DatasetWriter(root, fps=10, features=features, robot_type=None)
    for ep in range(2):
        shift = (0.5 * ep, 0.25)
        uv = _uv(T, shift)
        gt = np.concatenate([(uv - SIZE / 2) / 40.0, np.ones((T, GRID * GRID, 1))], -1).astype(np.float32)
        writer.add_episode(
            {
                types.image_key("ego"): translating_clip(T, SIZE, shift, seed=ep),
                types.depth_key("ego"): np.ones((T, SIZE, SIZE), np.float32),
                types.intrinsics_key("ego"): np.broadcast_to(pinhole(SIZE, 40.0), (T, 3, 3)),
                types.gt_points_key("ego"): gt,
                types.gt_points_visible_key("ego"): np.ones((T, GRID * GRID), bool),
            },
            task="wave",
        )
    writer.finalize()
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three optimiser steps of the real recipe on four synthetic clips: a weights folder made by the trainer."""
    from robo4d.recipes.tracker_commands import Train

    base = tmp_path_factory.mktemp("tracker")
    clips = base / "clips"
    clips.mkdir()
    for i in range(4):
        shift = (1.0 - 0.5 * i, 0.5)
        clip = Clip(
            translating_clip(12, SIZE, shift, seed=i), _uv(12, shift).astype(np.float32), np.ones((12, 16), bool)
        )
        save_clip(clips / f"clip_{i:06d}.npz", clip)
    Train(data=(clips,), out=base / "run", steps=3, batch_size=2, points=8, num_workers=0, progress=False).run()
    return base / "run"


def test_train_resumes_and_exports_weights_with_provenance(trained):
    weights = trained / "weights"
    assert (weights / WEIGHTS_FILE).is_file()
    training = read_card(weights)["training"]
    assert training["step"] == 3 and training["datasets"][0]["num_episodes"] == 4
    metrics = [json.loads(line) for line in (trained / "tracker" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 3 and np.isfinite(metrics[-1]["loss"]) and "epe_px" in metrics[-1]["metrics"]


def test_train_fine_tunes_from_a_checkpoint(trained, tmp_path, capsys):
    import safetensors.torch

    from robo4d.recipes.tracker_commands import Train

    source = trained / "tracker"
    clips = trained.parent / "clips"
    Train(data=(clips,), out=tmp_path / "ft", steps=1, batch_size=2, points=8, lr=1e-9, num_workers=0,
          init_from=source, progress=False).run()  # fmt: skip
    before = safetensors.torch.load_file(str(trained / "weights" / WEIGHTS_FILE))
    after = safetensors.torch.load_file(str(tmp_path / "ft" / "weights" / WEIGHTS_FILE))
    assert before.keys() == after.keys()
    assert all(np.allclose(before[k].numpy(), after[k].numpy(), atol=1e-6) for k in before)  # started from source
    assert read_card(tmp_path / "ft" / "weights")["training"]["stage"]["init_from"] == str(source.resolve())
    with pytest.raises(SystemExit) as e:
        Train(data=(clips,), out=tmp_path / "bad", init_from=tmp_path / "missing").run()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--init-from" in err and "missing does not exist" in err


def test_train_mixes_several_clip_folders(trained, tmp_path, capsys):
    """`--data A B` trains on both folders' clips as one pool; the card records each folder and its data card."""
    from robo4d.recipes.tracker_commands import Train

    clips, plain = trained.parent / "clips", tmp_path / "plain"
    plain.mkdir()
    for i in range(2):
        clip = Clip(translating_clip(12, SIZE, (0.0, 0.0), seed=10 + i), _uv(12, (0.0, 0.0)).astype(np.float32),
                    np.ones((12, 16), bool))  # fmt: skip
        save_clip(plain / f"clip_{i:06d}.npz", clip)
    (plain / "clips.json").write_text(json.dumps({"plain": True}))
    Train(data=(clips, plain), out=tmp_path / "mix", steps=1, batch_size=2, points=8, num_workers=0,
          progress=False).run()  # fmt: skip
    training = read_card(tmp_path / "mix" / "weights")["training"]
    assert [d["num_episodes"] for d in training["datasets"]] == [4, 2]
    assert training["data"] == [None, {"plain": True}]  # the fixture's folder has no clips.json
    with pytest.raises(SystemExit) as e:
        Train(data=(plain, tmp_path / "." / "plain"), out=tmp_path / "twice").run()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "names a folder twice" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "twice").exists()


def test_eval_reports_tapvid_metrics(human_root, trained, capsys, tmp_path):
    from robo4d.recipes.tracker_commands import Eval

    Eval(dataset=human_root, weights=trained / "weights", plot=tmp_path / "drift.png").run()
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 2 * T and result["episodes"] == 2
    for key in ("delta_avg", "occlusion_accuracy", "average_jaccard"):
        assert 0 <= result[key] <= 1
    # Every point is visible in every frame here, so the per-frame deltas average to the pooled one.
    assert len(result["delta_avg_by_frame"]) == T - 1
    assert np.isclose(np.mean(result["delta_avg_by_frame"]), result["delta_avg"])
    assert (tmp_path / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    Eval(dataset=human_root, tracker="lk", episodes=1).run()
    lk = json.loads(capsys.readouterr().out)
    assert lk["tracker"] == "lk" and lk["episodes"] == 1 and 0 <= lk["delta_avg"] <= 1


def test_eval_and_train_reject_bad_input_in_one_line(tmp_path, capsys):
    from robo4d.recipes.tracker_commands import Eval, Train

    with pytest.raises(SystemExit) as e:
        Eval(dataset=tmp_path / "nope").run()
    assert e.value.code == 2 and "nope is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        Train(data=(tmp_path,), out=tmp_path / "run").run()
    assert e.value.code == 2 and "holds no clip_*.npz" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        Eval(dataset=tmp_path, plot=tmp_path / "drift.jpg").run()
    assert e.value.code == 2 and "must name a .png file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        Eval(dataset=tmp_path, tracker="lk", refine=True).run()
    assert e.value.code == 2 and "--refine need --tracker learned" in capsys.readouterr().err
    (tmp_path / "clip_000000.npz").write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        Train(data=(tmp_path,), out=tmp_path / "run", short_side=16).run()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--short-side must be >= 32 pixels, got 16" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        Train(data=(tmp_path,), out=tmp_path / "run", anchor_drift_px=-2.0).run()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--anchor-drift-px must be >= 0 pixels, got -2.0" in err and len(err.splitlines()) == 1


def test_extract_tracks_with_the_learned_tracker(human_root, trained, tmp_path, monkeypatch):
    from robo4d.extract.commands import Tracks

    # One worker uses every core by default; on a shared test machine torch's spinning threads then crawl.
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 1)
    out = tmp_path / "with_tracks"
    # Three training steps make no promise about visibility: the visibility gate is not what is tested here.
    Tracks(dataset=human_root, camera="ego", grid=GRID, tracker="learned", tracker_weights=trained / "weights",
           out=out, min_visible=0.0, warn_visible=0.0).run()  # fmt: skip
    ds = Dataset(out)
    data = ds.read_episode(0, [types.points_key("ego"), types.points_visible_key("ego")])
    assert data[types.points_key("ego")].shape == (T, GRID * GRID, 3)
    assert data[types.points_visible_key("ego")][0].all()  # every query is visible on its own frame
    record = ds.robo4d_meta["extract"]["ego"]
    assert record["tracker"] == "learned" and len(record["learned"]["weights_sha256"]) == 16


def test_missing_weights_fail_before_any_work(tmp_path):
    with pytest.raises(ExtractError, match=f"{CARD_FILE}|{WEIGHTS_FILE}"):
        runner.ExtractSettings(tracker="learned", learned=runner.LearnedConfig(weights=tmp_path))
