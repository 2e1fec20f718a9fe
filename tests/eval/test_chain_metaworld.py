"""Chain mode on real Meta-World envs: each subtask in its own env, the chain stops at the first failure."""

from __future__ import annotations

import functools
from pathlib import Path

from hold_policy import HoldPolicy

from robo4d.eval.commands import held_out_seed, make_world_env
from robo4d.eval.evaluate import EvalConfig, evaluate


def test_chain_on_metaworld_stops_at_the_first_failure(tmp_path: Path) -> None:
    chains = (("drawer-close-v3", "reach-v3"),)
    config = EvalConfig(chains=chains, episodes=2, seeds=(0,), max_steps=3, workers=1, videos_per_task=1)
    make_env = functools.partial(make_world_env, image_size=(32, 32), cameras=("front", "wrist"))
    info = evaluate(config, HoldPolicy, make_env, held_out_seed, tmp_path, progress=False)
    # Holding still for 3 steps closes no drawer: every run fails its first subtask and never starts reach.
    assert [[s["task"] for s in r["subtasks"]] for r in info["per_run"]] == [["drawer-close-v3"]] * 2
    assert info["aggregated"]["success_at"] == {"1": 0.0, "2": 0.0} and info["aggregated"]["avg_len"] == 0.0
    assert info["per_run"][0]["subtasks"][0]["seed"] == held_out_seed(0, 0)  # a held-out initial state
    assert (tmp_path / info["per_chain"][0]["video_paths"][0]).is_file()
