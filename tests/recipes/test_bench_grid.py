"""The bench grid: expansion, keys, shards, bad input; a tiny real grid for caching, resume and merge."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from robo4d.recipes import bench
from robo4d.recipes.bench_commands import BenchCommand


def test_grid_collapses_axes_a_method_ignores() -> None:
    preset = dataclasses.replace(bench.PRESETS["paper"], settings=("default",), demos=(2,))
    cells = bench.expand(preset)
    scratch = [c for c in cells if c.method == "scratch"]
    arm4r = [c for c in cells if c.method == "arm4r-3stage"]
    assert {(c.human, c.tracks) for c in scratch} == {(bench.NO_HUMAN, bench.ANY_TRACKS)}  # no human video read
    assert len(scratch) == 3 and len(arm4r) == 3 * 4 * 2  # seeds; seeds x human data x track sources
    assert cells[0].method == "scratch"  # the baseline of each demo count runs first


def test_the_paper_grid_holds_every_registered_recipe() -> None:
    from robo4d.train.recipes import all_recipes

    methods = {c.method for c in bench.expand(bench.PRESETS["paper"])}
    assert methods == {*all_recipes(), *bench.VARIANTS}  # GR-1 and IGOR come in through the registry
    quick = bench.PRESETS["quick"]
    assert {c.method for c in bench.expand(quick)} == set(quick.methods)


def test_medium_is_quicks_grid_on_a_larger_budget_and_the_same_data() -> None:
    quick, medium = bench.PRESETS["quick"], bench.PRESETS["medium"]
    assert list(map(str, bench.expand(quick))) == list(map(str, bench.expand(medium)))
    assert medium.steps_scale * medium.batch_size > quick.steps_scale * quick.batch_size
    cell = bench.expand(medium)[-1]
    assert bench.cell_config(quick, cell)["human_data"] == bench.cell_config(medium, cell)["human_data"]
    assert bench.cell_config(quick, cell)["robot_data"] == bench.cell_config(medium, cell)["robot_data"]
    assert bench.cell_key(quick, cell) != bench.cell_key(medium, cell)


def test_an_axis_can_be_replaced_on_a_presets_budget() -> None:
    medium = bench.PRESETS["medium"]
    lever = bench.bench_preset("medium", methods=("arm4r-no-stage2",), human=("in-domain",), seeds=(0, 1, 2))
    cells = bench.expand(lever)
    assert {c.method for c in cells} == {"scratch", "arm4r-no-stage2"}  # the baseline always runs
    assert {c.human for c in cells if c.method != "scratch"} == {"in-domain"}
    scratch = cells[0]
    assert bench.cell_key(lever, scratch) == bench.cell_key(medium, scratch)  # shared with medium's own cells
    assert bench.bench_preset("medium", methods=(), demos=()) == medium  # empty: the preset's own axis
    with pytest.raises(ValueError, match="unknown tracks 'oracle'"):
        bench.bench_preset("quick", tracks=("oracle",))
    with pytest.raises(ValueError, match="not axes"):
        bench.bench_preset("quick", steps_scale=(2,))


def test_dropping_a_stage_rewires_the_next_one() -> None:
    from robo4d.train.recipes import RecipeInputs

    stages = bench._recipe_stages("arm4r-no-stage2", RecipeInputs(human=("h",), robot=("r",)))
    assert [s.name for s in stages] == ["stage1", "stage3"] and stages[1].init_from == "stage1"


def test_a_longer_variant_multiplies_one_stages_steps_only(monkeypatch) -> None:
    from robo4d.train.recipes import RecipeInputs

    inputs = RecipeInputs(human=("h",), robot=("r",))
    base = {s.name: s for s in bench._recipe_stages("arm4r-3stage", inputs)}
    longer = {s.name: s for s in bench._recipe_stages("arm4r-pretrain-x2", inputs)}
    assert longer["stage1"].steps == 2 * base["stage1"].steps
    assert {n: dataclasses.replace(s, steps=1) for n, s in longer.items()} == {
        n: dataclasses.replace(s, steps=1) for n, s in base.items()
    }  # the same stages otherwise, named as the recipe's
    monkeypatch.setitem(bench.VARIANTS, "bad", bench.Variant(recipe="arm4r-3stage", longer=(("stage9", 2.0),)))
    with pytest.raises(ValueError, match="recipe 'arm4r-3stage' has no stage 'stage9'"):
        bench._recipe_stages("bad", inputs)


def test_keys_change_with_any_part_of_the_configuration() -> None:
    preset = bench.PRESETS["quick"]
    cell = bench.expand(preset)[0]
    key = bench.cell_key(preset, cell)
    assert key == bench.cell_key(preset, dataclasses.replace(cell))
    assert key != bench.cell_key(preset, dataclasses.replace(cell, seed=cell.seed + 1))
    assert key != bench.cell_key(dataclasses.replace(preset, eval_episodes=11), cell)
    assert key != bench.cell_key(dataclasses.replace(preset, max_steps=119), cell)  # the data it trains on


def test_shards_partition_the_grid() -> None:
    preset = bench.PRESETS["quick"]
    cells = bench.expand(preset)
    shards = [bench.shard_cells(preset, cells, (i, 3)) for i in range(3)]
    assert sorted(map(str, sum(shards, []))) == sorted(map(str, cells))
    assert all(shards)
    for bad in ("3/3", "a/b", "1"):
        with pytest.raises(ValueError, match="--shard"):
            bench.parse_shard(bad)


def test_bad_command_line_input_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="did you mean 'quick'"):
        BenchCommand(preset="quik", out=tmp_path).run()
    with pytest.raises(SystemExit, match="--shard"):
        BenchCommand(preset="tiny", out=tmp_path, shard="2/2").run()
    with pytest.raises(SystemExit, match="unknown human 'in_domain'; did you mean 'in-domain'"):
        BenchCommand(preset="quick", out=tmp_path, human=("in_domain",)).run()
    with pytest.raises(SystemExit, match="no cells/ directory"):
        BenchCommand(preset="tiny", out=tmp_path / "m", merge=(tmp_path / "nothing",)).run()
    with pytest.raises(ValueError, match="unknown method 'gr9'"):
        bench.expand(dataclasses.replace(bench.PRESETS["tiny"], methods=("gr9",)))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny grid (2 cells) run as two shards into two directories."""
    root = tmp_path_factory.mktemp("bench")
    for i in range(2):
        BenchCommand(preset="tiny", out=root / f"s{i}", shard=f"{i}/2", workers=1).run()
    return root / "s0", root / "s1"


def test_each_shard_runs_its_own_cells_and_reports(shards: tuple[Path, Path]) -> None:
    keys = [{p.parent.name for p in s.glob("cells/*/result.json")} for s in shards]
    assert len(keys[0]) == len(keys[1]) == 1 and not keys[0] & keys[1]
    result = json.loads(next(shards[0].glob("cells/*/result.json")).read_text())
    preset = bench.PRESETS["tiny"]
    assert len(result["episodes"]) == preset.eval_episodes * len(preset.tasks) * len(preset.eval_seeds)
    assert result["key"] == bench.cell_key(preset, bench.Cell(**result["cell"]))
    assert (shards[0] / "report.md").is_file() and (shards[0] / "data_efficiency.png").is_file()


def test_done_cells_are_skipped_and_a_lost_result_is_redone(shards: tuple[Path, Path], capsys) -> None:
    out = shards[0]
    (result,) = out.glob("cells/*/result.json")
    before = result.read_text()
    capsys.readouterr()
    BenchCommand(preset="tiny", out=out, shard="0/2", workers=1).run()
    assert "[bench] cell" not in capsys.readouterr().out  # nothing ran
    result.unlink()  # as if the run died after training: the checkpoint is reused, evaluation reruns
    BenchCommand(preset="tiny", out=out, shard="0/2", workers=1).run()
    redone = json.loads(result.read_text())
    assert redone["episodes"] == json.loads(before)["episodes"]  # same checkpoint, same held-out states


def test_merge_gathers_every_shard(shards: tuple[Path, Path], tmp_path: Path) -> None:
    BenchCommand(preset="tiny", out=tmp_path, merge=shards).run()
    merged = json.loads((tmp_path / "bench.json").read_text())
    assert len(merged["cells"]) == 2 and merged["groups"][0]["success"]["seeds"] == 2
    assert "| scratch |" in (tmp_path / "report.md").read_text()
    BenchCommand(preset="tiny", out=tmp_path, merge=shards).run()  # idempotent
    assert len(list(tmp_path.glob("cells/*/result.json"))) == 2
    shutil.rmtree(tmp_path / "cells")


def test_settings_that_change_only_the_evaluation_share_one_training_run(shards, tmp_path: Path, monkeypatch) -> None:
    preset = bench.bench_preset("tiny", seeds=(0,), settings=("default", "camera", "wide"))
    keys = {c.setting: bench.training_key(bench.cell_config(preset, c)) for c in bench.expand(preset)}
    assert keys["default"] == keys["camera"] != keys["wide"]  # wide's demos come from a wider state box
    out = tmp_path / "bench"
    shutil.copytree(shards[0], out)  # one finished default cell
    (done,) = bench.load_results(out)
    runs = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*")}
    evaluated = []

    def evaluate(preset, policy, options, out, workers):  # the policy is what this test is about, not its score
        evaluated.append((policy, options))
        return {"per_episode": done["episodes"], "aggregated": {"pc_success": done["pc_success"], "eval_s": 0.0}}

    monkeypatch.setattr(bench, "_evaluate", evaluate)
    BenchCommand(preset="tiny", out=out, seeds=(done["cell"]["seed"],), settings=("camera",), workers=1).run()
    (camera,) = [r for r in bench.load_results(out) if r["key"] != done["key"]]
    assert camera["cell"] == {**done["cell"], "setting": "camera"}
    assert camera["training_key"] == done["training_key"]
    ((policy, options),) = evaluated
    assert policy.parent == out / "runs" / done["training_key"] and options == bench.SETTINGS["camera"].eval
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*")} == runs  # nothing trained or rewritten
