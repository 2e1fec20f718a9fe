"""Bench statistics on samples with known answers: intervals, pairing, the report's rows and levers."""

from __future__ import annotations

import numpy as np
import pytest

from robo4d.recipes.bench_report import levers, most_informative, summarise
from robo4d.recipes.bench_stats import bootstrap_interval, gain_difference, paired_difference, resolvable_difference


def test_constant_outcomes_have_a_point_interval() -> None:
    i = bootstrap_interval(np.ones((3, 40)))
    assert (i.mean, i.std, i.low, i.high, i.seeds, i.episodes) == (100.0, 0.0, 100.0, 100.0, 3, 40)
    assert bootstrap_interval(np.zeros((1, 5))).high == 0.0


def test_interval_of_a_known_binomial_sample_matches_the_normal_approximation() -> None:
    # 1 seed, 400 episodes, exactly half successes: 95% interval ~ 50 ± 1.96 * sqrt(0.25 / 400) = 50 ± 4.9.
    values = np.zeros((1, 400))
    values[0, ::2] = 1
    i = bootstrap_interval(values)
    assert i.mean == 50.0
    assert abs((i.high - i.low) / 2 - 4.9) < 0.6 and i.low < 50 < i.high
    assert bootstrap_interval(values) == i  # seeded: the same interval every time


def test_seed_spread_widens_the_interval() -> None:
    # Two training seeds that disagree completely: the seed level of the bootstrap must show it.
    spread = bootstrap_interval(np.array([[1.0] * 50, [0.0] * 50]))
    agree = bootstrap_interval(np.tile(np.array([1.0, 0.0] * 25), (2, 1)))
    assert spread.mean == agree.mean == 50.0 and spread.std == 50.0 and agree.std == 0.0
    assert spread.high - spread.low > 2 * (agree.high - agree.low)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval(np.zeros((0, 3)))


def _result(method: str, seed: int, outcomes: list[bool], *, human: str = "none", tracks: str = "any",
            setting: str = "default", demos: int = 2) -> dict:  # fmt: skip
    cell = {"method": method, "seed": seed, "human": human, "tracks": tracks, "setting": setting, "demos": demos}
    episodes = [{"task": "reach-v3", "seed": 1_000_000 + i, "success": s} for i, s in enumerate(outcomes)]
    return {"key": f"{method}-{human}-{tracks}-{seed}", "cell": cell, "episodes": episodes}


def test_paired_difference_cancels_shared_difficulty() -> None:
    # Both policies fail the same hard half of the states; the method also solves 5 states scratch misses.
    base = [i % 2 == 0 and i >= 10 for i in range(40)]
    better = [i % 2 == 0 for i in range(40)]
    method = [_result("arm4r", s, better) for s in range(3)]
    scratch = [_result("scratch", s, base) for s in range(3)]
    d = paired_difference(method, scratch)
    assert d is not None and d.mean == pytest.approx(12.5) and d.low > 0  # resolved despite 40 episodes
    assert paired_difference(method, [_result("scratch", 7, base)]) is None  # no common training seed
    mismatched = [_result("scratch", 0, base[:-1])]
    with pytest.raises(ValueError, match="different initial states|other initial states"):
        paired_difference(method[:1], mismatched)


def test_summary_rows_levers_and_most_informative() -> None:
    ok = [True] * 30 + [False] * 10
    weak = [True] * 10 + [False] * 30
    results = [_result("scratch", s, weak) for s in range(3)]
    results += [_result("arm4r", s, ok, human="in-domain", tracks="extracted") for s in range(3)]
    results += [_result("arm4r", s, weak, human="other", tracks="extracted") for s in range(3)]
    rows = summarise(results)
    assert [r["method"] for r in rows] == ["scratch", "arm4r", "arm4r"]  # the baseline first
    by_human = {r["human"]: r for r in rows}
    assert by_human["in-domain"]["vs_baseline"]["mean"] == pytest.approx(50.0)
    assert by_human["other"]["vs_baseline"]["mean"] == 0.0 and by_human["none"]["vs_baseline"] is None
    (lever,) = [lv for lv in levers(results) if lv["axis"] == "human"]
    assert (lever["a"], lever["b"], lever["a_minus_b"]["mean"]) == ("in-domain", "other", pytest.approx(50.0))
    assert most_informative(rows)["human"] == "in-domain"


def test_a_setting_lever_compares_gains_over_scratch_not_raw_success() -> None:
    # default: scratch 25%, ARM4R 75% (gain +50); wide: scratch 0%, ARM4R 25% (gain +25). The wide world is
    # harder for everyone; the lever is how much more pre-training gains in one world: +25, not 75 - 25 = +50.
    at = {k: [True] * n + [False] * (40 - n) for k, n in (("none", 0), ("quarter", 10), ("most", 30))}
    results = [_result("scratch", s, at["quarter"]) for s in range(3)]
    results += [_result("arm4r", s, at["most"], human="other", tracks="extracted") for s in range(3)]
    results += [_result("scratch", s, at["none"], setting="wide") for s in range(3)]
    results += [_result("arm4r", s, at["quarter"], human="other", tracks="extracted", setting="wide") for s in range(3)]
    (lever,) = [lv for lv in levers(results) if lv["axis"] == "setting"]
    assert (lever["a"], lever["b"], lever["a_minus_b"]["mean"]) == ("default", "wide", pytest.approx(25.0))
    assert lever["a_minus_b"]["low"] < 25.0 < lever["a_minus_b"]["high"] and lever["a_minus_b"]["std"] == 0.0
    no_wide_scratch = [r for r in results if not (r["cell"]["method"] == "scratch" and r["cell"]["setting"] == "wide")]
    assert not [lv for lv in levers(no_wide_scratch) if lv["axis"] == "setting"]  # no gain to compare without it
    with pytest.raises(ValueError, match="40 and 39 episodes"):
        gain_difference(results[3:6], results[:3], [_result("arm4r", 0, at["none"][:-1])],
                        [_result("scratch", 0, at["none"][:-1])])  # fmt: skip


def test_report_of_a_partial_grid_says_how_partial(tmp_path) -> None:
    from robo4d.recipes.bench_report import write_report

    budget = {"baseline": "scratch", "steps_scale": 0.1, "batch_size": 16, "eval_episodes": 40,
              "tasks": ["reach-v3"], "eval_seeds": [0]}  # fmt: skip
    results = [{**_result(m, s, [s % 2 == 0] * 40), "config": {"budget": budget}}
               for m in ("scratch", "arm4r") for s in range(3)]  # fmt: skip
    report = write_report(results, tmp_path, planned=27).read_text()
    assert "6 cells of the 27 the preset declares. Each recipe's default model preset, steps x0.1," in report
    assert "| arm4r | none | any | default | 2 | 3 |" in report
    assert (tmp_path / "data_efficiency.png").is_file() and (tmp_path / "bench.json").is_file()
    report = write_report(results, tmp_path, planned=3).read_text()
    assert "6 cells (the preset declares 3; the others are lever runs in the same folder)." in report


def test_resolvable_difference_shrinks_with_episodes() -> None:
    assert resolvable_difference(250, 3) < 5.1 < resolvable_difference(40, 3)
