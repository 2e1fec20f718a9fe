"""Test-only stand-ins following the WorldEnv and Policy contracts (importable by spawned pool workers)."""

from __future__ import annotations

import numpy as np

from robo4d.types import ActionChunk, Observation

GOALS = {"reach-fake": (0.05, 0.0, 0.0), "push-fake": (0.0, 0.05, 0.0), "far-fake": (0.5, 0.5, 0.0)}
SIZE = (16, 16)
QUAT = (0.0, 1.0, 0.0, 0.0)


class PointEnv:
    """The hand is a point moved by action * 1 cm per step (as Meta-World's mocap); success within 5 mm of the
    task's goal. The seed offsets the start, so different seeds give different episodes."""

    def __init__(self, task: str, *, seed: int, image_size: tuple[int, int] = SIZE, max_steps: int = 30) -> None:
        if task not in GOALS:
            raise KeyError(task)
        self.task = task
        self.goal = np.array(GOALS[task])
        self.start = np.array([0.0, 0.0, 0.0]) + np.random.default_rng(seed).uniform(-0.01, 0.01, 3)
        self.image_size = image_size
        self.max_steps = max_steps
        self.gripper = 1.0

    def _obs(self) -> Observation:
        img = np.full((*self.image_size, 3), int(np.clip(self.pos[0] * 1000, 0, 255)), np.uint8)
        state = np.array([*self.pos, *QUAT, self.gripper], dtype=np.float32)
        return Observation(images={"front": img, "wrist": img.copy()}, state=state, task=self.task)

    def reset(self) -> Observation:
        self.pos = self.start.copy()
        self.t = 0
        return self._obs()

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool]:
        assert action.shape == (4,) and np.all(np.abs(action) <= 1)
        self.pos = self.pos + action[:3] * 0.01
        self.gripper = 1.0 if action[3] < 0 else 0.0
        self.t += 1
        dist = float(np.linalg.norm(self.pos - self.goal))
        return self._obs(), -dist, dist < 0.005, self.t >= self.max_steps


class GoalPolicy:
    """Deterministic: a chunk of K targets walking 1 cm per step from the observed state toward the goal."""

    def __init__(self, k: int = 4, kind: str = "eef_pose") -> None:
        self.k = k
        self.kind = kind
        self.calls = 0

    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        self.calls += 1
        pos = obs.state[:3].astype(np.float64)
        goal = np.array(GOALS[obs.task])
        rows = []
        for _ in range(self.k):
            delta = goal - pos
            pos = pos + delta * min(1.0, 0.01 / max(np.linalg.norm(delta), 1e-9))
            rows.append([*pos, *QUAT, 1.0])
        return ActionChunk(actions=np.array(rows, np.float32), kind=self.kind)

    def reset(self) -> None:
        self.calls = 0


def make_point_env(task: str, seed: int) -> PointEnv:
    return PointEnv(task, seed=seed)


def make_goal_policy() -> GoalPolicy:
    return GoalPolicy()
