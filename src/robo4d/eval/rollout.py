"""Closed-loop rollouts: one episode, or a CALVIN-style chain of subtasks that stops at the first failure.

An episode: reset the policy and the runtime, then every step turn the policy's chunks into an end-effector
target (runtime.py), the target into a Meta-World action (controller.py), and step the env. An episode is a
success as soon as the env reports success at any step (Meta-World's convention); it then ends early, as it
does when the env says done or the step budget runs out.

A chain (GR-1's CALVIN protocol): subtasks run in order, each with its own step budget and a policy reset,
and the chain stops at the first failed subtask; its length is the number of subtasks completed. Where the
next subtask's environment comes from is the `ChainScene`'s business, so a simulator whose scene persists
(CALVIN) carries its state over, while Meta-World — one env per task — starts each subtask in a fresh env
(`FreshEnvScene`); there "carrying over" is the policy's episode boundary only, and the chain measures how
reliably a policy solves several instructions in a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robo4d.eval.controller import ControllerConfig, metaworld_action
from robo4d.eval.runtime import TargetRuntime
from robo4d.types import ChunkPolicy, Observation


class StepEnv(Protocol):
    """The part of `world.env.WorldEnv` a rollout uses."""

    max_steps: int

    def reset(self) -> Observation: ...

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool]: ...


class ChainScene(Protocol):
    """Hands out the environment for each subtask of a chain, carrying scene state over where the sim allows."""

    def begin(self, index: int, task: str) -> tuple[StepEnv, Observation]:
        """The env for subtask `index` (0-based) and its first observation."""
        ...


@dataclass(frozen=True, kw_only=True)
class EpisodeResult:
    """One rolled-out episode (or one subtask of a chain)."""

    task: str
    seed: int  # the env seed that produced the initial state
    success: bool  # the env reported success at some step
    sum_reward: float
    max_reward: float
    steps: int  # env steps taken
    queries: int  # policy calls made
    frames: np.ndarray | None = None  # (T+1, H, W, 3) uint8 from the video camera, when recorded


def run_episode(
    policy: ChunkPolicy,
    env: StepEnv,
    first_obs: Observation,
    runtime: TargetRuntime,
    controller: ControllerConfig,
    *,
    task: str,
    seed: int,
    max_steps: int,
    video_camera: str | None = None,
) -> EpisodeResult:
    """Roll out from `first_obs` (the env's reset observation) for at most `max_steps` steps."""
    policy.reset()
    runtime.reset()
    if video_camera is not None and video_camera not in first_obs.images:
        raise ValueError(f"video camera {video_camera!r} not in the observation's cameras {sorted(first_obs.images)}")
    frames = [first_obs.images[video_camera]] if video_camera else []
    obs, rewards, success, steps = first_obs, [], False, 0
    while steps < max_steps and not success:
        target = runtime.next_target(obs, policy)  # (8,)
        obs, reward, success, done = env.step(metaworld_action(target, obs.state, controller))
        steps += 1
        rewards.append(float(reward))
        if video_camera:
            frames.append(obs.images[video_camera])
        if done:
            break
    return EpisodeResult(
        task=task,
        seed=seed,
        success=bool(success),
        sum_reward=float(np.sum(rewards)),
        max_reward=float(np.max(rewards)) if rewards else 0.0,
        steps=steps,
        queries=runtime.queries,
        frames=np.stack(frames) if frames else None,
    )


def run_chain(
    policy: ChunkPolicy,
    scene: ChainScene,
    tasks: tuple[str, ...],
    seeds: tuple[int, ...],
    runtime: TargetRuntime,
    controller: ControllerConfig,
    *,
    max_steps: int | None,
    video_camera: str | None = None,
) -> list[EpisodeResult]:
    """Subtasks in order until one fails; returns the attempted ones (the last failed unless all succeeded).

    `seeds[i]` is reported with subtask i; `max_steps` None = each env's own `max_steps`.
    """
    results = []
    for i, task in enumerate(tasks):
        env, first_obs = scene.begin(i, task)
        budget = env.max_steps if max_steps is None else max_steps
        result = run_episode(
            policy, env, first_obs, runtime, controller, task=task, seed=seeds[i], max_steps=budget,
            video_camera=video_camera,
        )  # fmt: skip
        results.append(result)
        if not result.success:
            break
    return results


class FreshEnvScene:
    """Meta-World chains: each subtask in a new env of its task, seeded with the subtask's held-out seed."""

    def __init__(self, make_env: Callable[[str, int], StepEnv], seeds: tuple[int, ...]) -> None:
        self._make_env = make_env
        self._seeds = seeds

    def begin(self, index: int, task: str) -> tuple[StepEnv, Observation]:
        env = self._make_env(task, self._seeds[index])
        return env, env.reset()
