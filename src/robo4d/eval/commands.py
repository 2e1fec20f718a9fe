"""`robo4d eval`: closed-loop evaluation of a checkpoint (or a served policy) in the embedded Meta-World world.

    robo4d eval --checkpoint runs/arm4r/control --tasks reach-v3 push-v3 --episodes 25 --seeds 0 1 2
    robo4d eval --remote ws://127.0.0.1:8000 --chain reach-v3,push-v3 reach-v3,drawer-open-v3
    robo4d eval --checkpoint runs/real/control --camera-map front=image   # the world's `front` is the policy's `image`

The embedded world is a Meta-World Sawyer driven through end-effector targets, so only policies whose
`PolicyIO` declares end-effector actions (and an end-effector or no state) are evaluated here; a joint-space
policy is refused before anything starts (serve it to its own robot with `robo4d serve`).

Writes <out>/eval_info.json, <out>/success.png and <out>/videos/<task>/*.mp4. Torch, the policy and the world
are imported in `run()` only, so `robo4d eval --help` stays fast.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import tyro

from robo4d.eval.controller import ControllerConfig
from robo4d.eval.runtime import RuntimeConfig
from robo4d.types import (
    ACTION_EEF_POSE,
    API_KEY_ENV,
    CAM_FRONT,
    CAM_WRIST,
    STATE_EEF_POSE,
    STATE_NONE,
    PolicyIO,
)

WORLD_CAMERAS = (CAM_FRONT, CAM_WRIST)  # the robot cameras `world.env.WorldEnv` renders


def require_world_io(io: PolicyIO, method: str, source: str | Path) -> None:
    """The embedded world executes end-effector targets and observes the end-effector pose; refuse the rest."""
    if io.action_kind != ACTION_EEF_POSE:
        raise ValueError(
            f"{str(source)!r} is a {method!r} {io.action_kind!r}-space policy ({io.action_dim}-wide actions): the "
            f"embedded Meta-World world executes end-effector poses ({ACTION_EEF_POSE!r}) only; serve it to its "
            "own robot with `robo4d serve` instead"
        )
    if io.state_kind not in (STATE_EEF_POSE, STATE_NONE):
        raise ValueError(
            f"{str(source)!r} reads a {io.state_kind!r} state ({io.state_dim} wide): the embedded world observes the "
            f"end-effector pose ({STATE_EEF_POSE!r}) only"
        )


def valid_tasks() -> tuple[str, ...]:
    """Task names the embedded world can run (robot tasks first)."""
    from robo4d.world import tasks

    return tuple(dict.fromkeys((*tasks.ROBOT_TASKS, *tasks.HUMAN_TASKS)))


def check_task_names(names: tuple[str, ...], valid: tuple[str, ...]) -> None:
    from robo4d.methods.base import unknown_name_message

    for name in names:
        if name not in valid:
            raise ValueError(unknown_name_message("task", name, valid))


def held_out_seed(eval_seed: int, episode: int) -> int:
    """The world's held-out initial-state seed of an evaluation episode (never a training demo's seed)."""
    from robo4d.world import tasks

    return tasks.eval_seed(eval_seed, episode)


def make_world_env(task: str, seed: int, *, image_size: tuple[int, int], cameras: tuple[str, ...]) -> Any:
    from robo4d.world.env import WorldEnv

    return WorldEnv(task, seed=seed, image_size=image_size, cameras=cameras, depth=False)  # policies read RGB only


def read_chain_file(path: Path) -> list[tuple[str, ...]]:
    """One chain per line, subtasks separated by commas; blank lines and '#' comments are skipped."""
    if not path.is_file():
        raise ValueError(f"--chain-file {str(path)!r}: no such file")
    chains = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            chain = tuple(t.strip() for t in line.split(","))
            if not all(chain):
                raise ValueError(f"{path}:{n}: empty task name in chain {line!r}")
            chains.append(chain)
    return chains


@dataclass(frozen=True)
class EvalCommand:
    """Roll a policy out on held-out initial states and report success per task (or per chain)."""

    checkpoint: Path | None = None  # control-stage checkpoint (or stage/run dir); not with --remote
    remote: str | None = None  # evaluate the policy served at this URL instead, e.g. ws://127.0.0.1:8000
    api_key: str | None = None  # API key of the --remote server (default: $ROBO4D_API_KEY)
    tasks: tuple[str, ...] = ()  # tasks to evaluate (default: every robot task of the world)
    chain: tuple[str, ...] = ()  # chain mode: comma-separated subtasks per chain, e.g. reach-v3,push-v3
    chain_file: Path | None = None  # chain mode: a file with one comma-separated chain per line
    episodes: int = 10  # episodes per task (runs per chain) per evaluation seed
    seeds: tuple[int, ...] = (0,)  # evaluation seeds (each picks its own held-out initial states)
    max_steps: int | None = None  # step budget per episode / subtask (default: the world's per-task budget)
    out: Path = Path("outputs/eval")  # output directory
    workers: int = 2  # parallel rollout processes, each loading the policy once
    videos_per_task: int = 2  # rollout mp4s kept per task (per chain)
    video_camera: str = CAM_FRONT  # world camera recorded in the videos
    image_size: tuple[int, int] | None = None  # (H, W) rendered; default: the policy's PolicyIO.image_size
    # World camera -> policy camera, ROBOT=POLICY (repeatable), e.g. front=image; unmapped cameras keep their
    # names. With --remote, the policy cameras are the names the server asks for. Never inferred from the
    # checkpoint's training camera map.
    camera_map: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)  # ensembling / chunking, gripper threshold
    controller: ControllerConfig = field(default_factory=ControllerConfig)  # target -> Meta-World action gains

    def plan(self) -> tuple[Any, Any, Any]:
        """(EvalConfig, make_policy, make_env), validated; raises ValueError naming the bad argument."""
        from robo4d.eval.camera_map import parse_camera_map, robot_cameras
        from robo4d.eval.evaluate import EvalConfig
        from robo4d.eval.policy_source import (
            checkpoint_io,
            connect_remote_policy,
            load_local_policy,
            require_control,
        )

        if (self.checkpoint is None) == (self.remote is None):
            raise ValueError("give exactly one of --checkpoint (evaluate locally) or --remote (a served policy)")
        if self.remote is not None:
            from robo4d.serve.client import PolicyClient

            api_key = self.api_key or os.environ.get(API_KEY_ENV) or None
            with PolicyClient(self.remote, api_key=api_key) as probe:
                spec = probe.spec
            io, method, source, wanted = spec.io, spec.method, self.remote, spec.robot_cameras
        else:
            found = checkpoint_io(self.checkpoint)
            io, method, source, wanted = found.io, found.method, self.checkpoint, found.io.cameras
        require_control(io, method, source)  # first: a pre-training checkpoint gets the "wrong kind" error
        require_world_io(io, method, source)
        camera_map = parse_camera_map(self.camera_map, wanted)
        cameras = robot_cameras(wanted, camera_map)
        for cam in (*cameras, self.video_camera):
            if cam not in WORLD_CAMERAS:
                hint = "; map it with --camera-map WORLD_CAMERA=" + cam if cam != self.video_camera else ""
                raise ValueError(f"camera {cam!r}: the embedded world renders only {list(WORLD_CAMERAS)}{hint}")
        if self.remote is not None:
            make_policy = functools.partial(connect_remote_policy, self.remote, api_key, camera_map)
        else:
            make_policy = functools.partial(load_local_policy, str(self.checkpoint), camera_map)

        chains = [tuple(t.strip() for t in c.split(",")) for c in self.chain]
        if self.chain_file is not None:
            chains += read_chain_file(self.chain_file)
        if chains and self.tasks:
            raise ValueError("--tasks and --chain/--chain-file are exclusive: evaluate single tasks or chains")
        valid = valid_tasks()
        tasks = self.tasks or (() if chains else valid_robot_tasks())
        check_task_names(tuple(tasks) + tuple(t for c in chains for t in c), valid)
        config = EvalConfig(
            tasks=tuple(tasks),
            chains=tuple(chains),
            episodes=self.episodes,
            seeds=self.seeds,
            max_steps=self.max_steps,
            workers=self.workers,
            videos_per_task=self.videos_per_task,
            video_camera=self.video_camera,
            runtime=self.runtime,
            controller=self.controller,
        )
        image_size = self.image_size or io.image_size
        render = tuple(dict.fromkeys((*cameras, self.video_camera)))
        make_env = functools.partial(make_world_env, image_size=image_size, cameras=render)
        return config, make_policy, make_env

    def run(self) -> None:
        from robo4d.eval.evaluate import evaluate
        from robo4d.eval.report import EVAL_INFO_FILE

        config, make_policy, make_env = self.plan()
        info = evaluate(config, make_policy, make_env, held_out_seed, self.out)
        agg = info["aggregated"]
        if config.chain_mode:
            print(f"avg_len {agg['avg_len']:.2f}  success_at {agg['success_at']}  ({agg['n_runs']} runs)")
        else:
            for task in info["per_task"]:
                print(f"{task['task']:<32} {task['metrics']['pc_success']:6.1f}%")
            print(f"{'overall':<32} {agg['pc_success']:6.1f}% (mean over seeds {agg['pc_success_mean']:.1f} "
                  f"± {agg['pc_success_std']:.1f})")  # fmt: skip
        print(f"wrote {self.out / EVAL_INFO_FILE} in {agg['eval_s']:.1f} s")


def valid_robot_tasks() -> tuple[str, ...]:
    from robo4d.world import tasks

    return tuple(tasks.ROBOT_TASKS)


COMMAND = EvalCommand
