"""The whole ARM4R story end to end on the tiny world: data -> tracks -> 3 stages + baseline -> eval -> report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robo4d.recipes.demo import PRESETS, demo_preset, run_demo

POLICIES = ("scratch", "arm4r-3stage")  # arm4r's recipes, the baseline first


def _check_outputs(out: Path) -> dict[str, dict]:
    """The report's numbers are the evaluations' numbers, on the same held-out states for every policy."""
    from robo4d.world.tasks import eval_seed

    report = (out / "report.md").read_text()
    assert "| **overall** |" in report and "**Most informative cell:** `arm4r-3stage`" in report
    infos = {name: json.loads((out / "eval" / name / "eval_info.json").read_text()) for name in POLICIES}
    states = [[(e["task"], e["seed"]) for e in info["per_episode"]] for info in infos.values()]
    assert states[0] == states[1] and len(states[0]) == PRESETS["tiny"].eval_episodes * 2  # paired, 2 tasks
    assert all(seed >= eval_seed(0, 0) for _, seed in states[0])  # never a training demo's initial state
    diff = infos["arm4r-3stage"]["aggregated"]["pc_success"] - infos["scratch"]["aggregated"]["pc_success"]
    assert f"| arm4r-3stage | {infos['arm4r-3stage']['aggregated']['pc_success']:.1f} [" in report
    assert f"| {diff:+.1f} [" in report  # paired difference of the same episodes = difference of the means
    for name in POLICIES:
        assert (out / "runs" / name / "loss.png").is_file()
    assert (out / "success_comparison.png").is_file()
    assert list((out / "viz").glob("*.png")) and list((out / "viz").glob("*.mp4"))
    return infos


def test_tiny_demo_runs_end_to_end_and_reruns_from_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_demo(PRESETS["tiny"], tmp_path, workers=1)
    _check_outputs(tmp_path)
    capsys.readouterr()
    run_demo(PRESETS["tiny"], tmp_path, workers=1)  # everything cached: every step is skipped
    out = capsys.readouterr().out
    steps = ("world human", "world robot", "extract human/ego", "extract robot/front", "viz tracks",
             "train arm4r-3stage", "eval arm4r-3stage", "train scratch", "eval scratch")  # fmt: skip
    for step in steps:
        assert f"[demo] {step}: already done, skipped" in out


def test_unknown_demo_preset_or_method_suggests_the_closest() -> None:
    from robo4d.recipes.commands import DemoCommand
    from robo4d.recipes.demo import demo_recipes

    with pytest.raises(KeyError, match="did you mean 'default'"):
        demo_preset("defualt")
    with pytest.raises(SystemExit, match="did you mean 'arm4r'"):
        DemoCommand(method="arm4", out=Path("/nonexistent")).run()
    assert demo_recipes("arm4r") == (("scratch", "arm4r-3stage"), "scratch")
    names, baseline = demo_recipes("gr1")  # another method's recipes, through the registry
    assert baseline == names[0] and baseline != "scratch" and len(names) > 1


@pytest.mark.slow
def test_longer_tiny_demo_learns_in_every_stage(tmp_path: Path) -> None:
    """Minutes: enough steps that every stage's training loss must fall (run with `pytest -m slow`)."""
    from dataclasses import replace

    from robo4d.train.metrics_log import METRICS_FILE, read_records

    preset = replace(PRESETS["tiny"], stage1_steps=150, stage2_steps=60, control_steps=150, batch_size=8)
    run_demo(preset, tmp_path, workers=2)
    _check_outputs(tmp_path)
    for run, stages in (("arm4r-3stage", ("stage1", "stage2", "stage3")), ("scratch", ("control",))):
        for stage in stages:
            records = read_records(tmp_path / "runs" / run / stage / METRICS_FILE)
            first, last = records[0]["loss"], records[-1]["loss"]
            assert last < first, f"{run}/{stage}: loss {first:.4g} -> {last:.4g}"
