"""`robo4d world robot | human`: generate the embedded datasets (argument dataclasses; work imported in run)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class _WorldCommand:
    out: Path  # dataset root to create (must not exist)
    preset: str = "default"  # tiny (tests, < 1 min) or default (the demo's size)
    tasks: tuple[str, ...] = ()  # Meta-World task names (default: the preset's)
    episodes: int | None = None  # episodes per task (default: the preset's)
    seed: int = 0  # 0..9: all randomness (initial states, camera motion) derives from it
    image_size: int = 128  # rendered square image side in pixels
    max_steps: int | None = None  # recorded steps per episode at most (default: the preset's)
    workers: int = 2  # processes generating episodes in parallel

    kind = ""

    def _settings(self) -> dict:
        from robo4d.world import tasks

        preset = tasks.world_preset(self.preset)
        allowed = tasks.HUMAN_TASKS if self.kind == "human" else tasks.ROBOT_TASKS
        names = self.tasks or (preset.human_tasks if self.kind == "human" else preset.robot_tasks)
        tasks.check_tasks(tuple(names), allowed, kind=f"{self.kind} task")
        episodes = self.episodes or (preset.human_episodes if self.kind == "human" else preset.robot_episodes)
        if episodes < 1 or self.image_size < 8 or self.workers < 1:
            raise ValueError(f"need --episodes >= 1, --image-size >= 8, --workers >= 1; got {episodes}, "
                             f"{self.image_size}, {self.workers}")  # fmt: skip
        return {
            "task_names": tuple(names),
            "episodes": episodes,
            "seed": self.seed,
            "image_size": self.image_size,
            "max_steps": self.max_steps or preset.max_steps,
            "workers": self.workers,
            "preset": self.preset,
        }

    def _generate(self, **extra: object) -> None:
        from robo4d.world.generate import generate

        try:
            settings = self._settings()
        except (KeyError, ValueError) as e:
            sys.exit(f"robo4d world {self.kind}: {e.args[0] if isinstance(e, KeyError) else e}")
        summary = generate(self.kind, self.out, **settings, **extra)
        print(
            f"{self.out}: {summary['kept']} of {summary['attempts']} episodes kept, expert success "
            f"{100 * summary['expert_success_rate']:.1f}%, {summary['generation_seconds']} s "
            f"({summary['episodes_per_second']} episodes/s, {summary['steps_per_second']} steps/s)"
        )


@dataclass(frozen=True, kw_only=True)
class Robot(_WorldCommand):
    """Scripted-expert demos of robot tasks: front + wrist RGB-D, proprio, Meta-World actions."""

    keep_failures: bool = False  # keep episodes the expert failed (default: successful demos only)
    kind = "robot"

    def run(self) -> None:
        self._generate(grid=0, keep_failures=self.keep_failures)


@dataclass(frozen=True, kw_only=True)
class Human(_WorldCommand):
    """Egocentric "human" videos of the human tasks: moving camera, hand-like gripper, ground-truth 3D tracks."""

    grid: int | None = None  # GxG ground-truth query grid (default: the preset's; 36 for default)
    kind = "human"

    def run(self) -> None:
        from robo4d.world import tasks

        self._generate(grid=self.grid or tasks.world_preset(self.preset).grid, keep_failures=True)


COMMANDS = {"robot": Robot, "human": Human}
