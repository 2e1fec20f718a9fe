"""Evaluation end to end with fake policies and a fake world: report schema, chains, videos, pool, remote."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from eval_fakes import GoalPolicy, make_goal_policy, make_point_env

from robo4d.eval.evaluate import EvalConfig, evaluate
from robo4d.eval.policy_source import connect_remote_policy
from robo4d.serve.protocol import IOSpec
from robo4d.serve.server import PolicyServer, ServerConfig
from robo4d.types import ACTION_EEF_POSE, STATE_EEF_POSE, PolicyIO


def env_seed(eval_seed: int, episode: int) -> int:
    return 1000 + 100 * eval_seed + episode


def run(tmp_path: Path, make_policy=make_goal_policy, **kwargs) -> dict:
    config = EvalConfig(**{"workers": 1, "videos_per_task": 0, **kwargs})
    return evaluate(config, make_policy, make_point_env, env_seed, tmp_path, progress=False)


def test_per_episode_report_follows_lerobot_schema(tmp_path: Path) -> None:
    info = run(tmp_path, tasks=("reach-fake", "far-fake"), episodes=2, seeds=(0, 1), videos_per_task=1)
    assert json.loads((tmp_path / "eval_info.json").read_text()) == info
    assert (tmp_path / "success.png").stat().st_size > 1000
    assert len(info["per_episode"]) == 8
    first = info["per_episode"][0]
    assert set(first) >= {"episode_ix", "sum_reward", "max_reward", "success", "seed"}
    assert first["seed"] == 1000 and first["eval_seed"] == 0 and first["task"] == "reach-fake"
    reach, far = info["per_task"]
    assert reach["metrics"]["pc_success"] == 100.0 and far["metrics"]["pc_success"] == 0.0  # far is out of reach
    assert reach["metrics"]["pc_success_per_seed"] == {"0": 100.0, "1": 100.0}
    agg = info["aggregated"]
    assert agg["pc_success"] == 50.0 and agg["pc_success_std"] == 0.0 and agg["n_episodes"] == 8
    assert set(agg) >= {"avg_sum_reward", "avg_max_reward", "pc_success", "eval_s", "eval_ep_s"}
    assert all(e["steps"] == 30 for e in info["per_episode"] if e["task"] == "far-fake")  # ran to max_steps
    assert all(e["steps"] < 10 for e in info["per_episode"] if e["task"] == "reach-fake")  # stopped on success
    assert len(reach["video_paths"]) == 1 and (tmp_path / reach["video_paths"][0]).stat().st_size > 0


def test_chain_mode_stops_at_first_failure_and_reports_calvin_metrics(tmp_path: Path) -> None:
    chains = (("reach-fake", "push-fake"), ("reach-fake", "far-fake", "push-fake"))
    info = run(tmp_path, chains=chains, episodes=2, seeds=(0,), videos_per_task=1)
    runs = info["per_run"]
    assert [r["completed"] for r in runs] == [2, 2, 1, 1]
    assert [s["task"] for s in runs[2]["subtasks"]] == ["reach-fake", "far-fake"]  # push-fake never attempted
    assert info["per_chain"][0]["metrics"]["success_at"] == {"1": 100.0, "2": 100.0}
    assert info["aggregated"]["success_at"] == {"1": 100.0, "2": 50.0, "3": 0.0}
    assert info["aggregated"]["avg_len"] == 1.5
    assert (tmp_path / info["per_chain"][1]["video_paths"][0]).is_file()


def test_points_policy_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    points = functools.partial(GoalPolicy, kind="points")
    with pytest.raises(ValueError, match="kind='points'.*eef_pose"):
        run(tmp_path, make_policy=points, tasks=("reach-fake",), episodes=1)


def test_two_worker_processes_match_one(tmp_path: Path) -> None:
    kwargs = {"tasks": ("reach-fake", "push-fake"), "episodes": 2, "seeds": (3,)}
    one = run(tmp_path / "one", **kwargs)
    two = run(tmp_path / "two", workers=2, **kwargs)
    assert one["per_episode"] == two["per_episode"]


def test_remote_policy_gives_the_same_results_as_local(tmp_path: Path) -> None:
    kwargs = {"tasks": ("reach-fake", "push-fake"), "episodes": 2, "seeds": (0,)}
    local = run(tmp_path / "local", **kwargs)
    io = PolicyIO(
        cameras=("front", "wrist"), image_size=(16, 16), state_kind=STATE_EEF_POSE, state_dim=8,
        action_kind=ACTION_EEF_POSE, action_dim=8, chunk=4,
    )  # fmt: skip
    spec = IOSpec(io=io)
    with PolicyServer(GoalPolicy, spec, ServerConfig(port=0)).start_in_thread() as server:
        remote = run(tmp_path / "remote", make_policy=functools.partial(connect_remote_policy, server.url, None),
                     **kwargs)  # fmt: skip
    assert remote["per_episode"] == local["per_episode"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tasks": ("a",), "chains": (("a",),)}, "exactly one of tasks or chains"),
        ({"tasks": ("a", "a")}, "duplicate"),
        ({"tasks": ("a",), "seeds": (1, 1)}, "distinct evaluation seeds"),
        ({"tasks": ("a",), "episodes": 0}, "EvalConfig.episodes"),
    ],
)
def test_eval_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EvalConfig(**kwargs)
