"""The whole ARM4R story end to end on the tiny world: data -> tracks -> 3 stages + baseline -> eval -> report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robo4d.recipes.demo import PRESETS, demo_preset, run_demo


def _check_outputs(out: Path) -> None:
    report = (out / "report.md").read_text()
    assert "| **overall** |" in report and "arm4r" in report and "scratch" in report and "**Finding:**" in report
    for name in ("arm4r", "scratch"):
        info = json.loads((out / "eval" / name / "eval_info.json").read_text())
        assert info["aggregated"]["n_episodes"] >= 1
        assert 0.0 <= info["aggregated"]["pc_success"] <= 100.0
        assert (out / "runs" / name / "loss.png").is_file()
    assert (out / "success_comparison.png").is_file()
    assert list((out / "viz").glob("*.png")) and list((out / "viz").glob("*.mp4"))


def test_tiny_demo_runs_end_to_end_and_reruns_from_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_demo(PRESETS["tiny"], tmp_path, workers=1)
    _check_outputs(tmp_path)
    capsys.readouterr()
    run_demo(PRESETS["tiny"], tmp_path, workers=1)  # everything cached: every step is skipped
    out = capsys.readouterr().out
    steps = ("world human", "world robot", "extract human/ego", "extract robot/front", "viz tracks", "train arm4r",
             "eval arm4r", "train scratch", "eval scratch")  # fmt: skip
    for step in steps:
        assert f"[demo] {step}: already done, skipped" in out


def test_unknown_demo_preset_suggests_the_closest() -> None:
    with pytest.raises(KeyError, match="did you mean 'default'"):
        demo_preset("defualt")


@pytest.mark.slow
def test_longer_tiny_demo_learns_in_every_stage(tmp_path: Path) -> None:
    """Minutes: enough steps that every stage's training loss must fall (run with `pytest -m slow`)."""
    from dataclasses import replace

    from robo4d.train.metrics_log import METRICS_FILE, read_records

    preset = replace(PRESETS["tiny"], stage1_steps=150, stage2_steps=60, control_steps=150, batch_size=8)
    run_demo(preset, tmp_path, workers=2)
    _check_outputs(tmp_path)
    for run, stages in (("arm4r", ("stage1", "stage2", "stage3")), ("scratch", ("control",))):
        for stage in stages:
            records = read_records(tmp_path / "runs" / run / stage / METRICS_FILE)
            first, last = records[0]["loss"], records[-1]["loss"]
            assert last < first, f"{run}/{stage}: loss {first:.4g} -> {last:.4g}"
