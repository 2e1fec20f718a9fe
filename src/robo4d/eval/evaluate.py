"""Closed-loop evaluation: many episodes (or task chains) over a process pool, then eval_info.json, videos, a plot.

Work is a list of jobs; a job is a chain of one or more subtasks (a plain episode is a chain of one), so the
per-episode and CALVIN-style modes share one code path. Each pool worker builds its policy once (loading a
checkpoint, or connecting to a policy server) and then runs jobs; `workers=1` runs them in this process.
Episode seeds come from `env_seed(eval_seed, episode)` — the world's held-out initial states — so they never
coincide with the seeds of training demos. Videos are encoded by the worker that rolled the episode out.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from robo4d.eval.controller import ControllerConfig
from robo4d.eval.rollout import EpisodeResult, FreshEnvScene, StepEnv, run_chain
from robo4d.eval.runtime import RuntimeConfig, TargetRuntime
from robo4d.types import ChunkPolicy


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """What to evaluate and how; the policy and world come in as factories (see `evaluate`)."""

    tasks: tuple[str, ...] = ()  # per-episode mode: each task gets `episodes` episodes per eval seed
    chains: tuple[tuple[str, ...], ...] = ()  # chain mode (instead of tasks): subtask sequences, stop at failure
    episodes: int = 10  # episodes per task (or runs per chain) per eval seed
    seeds: tuple[int, ...] = (0,)  # evaluation seeds; success is also reported as mean/std over them
    max_steps: int | None = None  # step budget per episode / subtask; None = the env's own max_steps
    workers: int = 2  # parallel worker processes (1 = run in this process)
    videos_per_task: int = 2  # rollout mp4s kept per task (per chain in chain mode), first episodes first
    video_camera: str = "front"  # camera recorded into the videos
    video_fps: int = 20  # frame rate of the written mp4s
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)  # chunks -> targets
    controller: ControllerConfig = field(default_factory=ControllerConfig)  # targets -> Meta-World actions

    def __post_init__(self) -> None:
        if bool(self.tasks) == bool(self.chains):
            raise ValueError(f"EvalConfig: set exactly one of tasks or chains, got {self.tasks!r} and {self.chains!r}")
        if any(not chain for chain in self.chains):
            raise ValueError(f"EvalConfig.chains: every chain needs at least one task, got {self.chains!r}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"EvalConfig.tasks: duplicate task names in {self.tasks!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"EvalConfig.seeds: expected distinct evaluation seeds, got {self.seeds!r}")
        for name in ("episodes", "workers", "video_fps"):
            if getattr(self, name) < 1:
                raise ValueError(f"EvalConfig.{name}: expected >= 1, got {getattr(self, name)}")
        if self.videos_per_task < 0:
            raise ValueError(f"EvalConfig.videos_per_task: expected >= 0, got {self.videos_per_task}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"EvalConfig.max_steps: expected >= 1 or None, got {self.max_steps}")

    @property
    def chain_mode(self) -> bool:
        return bool(self.chains)

    @property
    def all_tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for chain in self.chains for t in chain)) if self.chain_mode else self.tasks


@dataclass(frozen=True, kw_only=True)
class Job:
    """One episode or one chain run: picklable, sent to a worker."""

    index: int  # position in the report
    tasks: tuple[str, ...]  # one task, or a chain's subtasks
    seeds: tuple[int, ...]  # env seed of each subtask
    eval_seed: int  # the evaluation seed this run belongs to
    video_path: str | None  # where to write this run's mp4, if recorded


@dataclass(frozen=True, kw_only=True)
class JobResult:
    job: Job
    subtasks: list[EpisodeResult]  # attempted subtasks in order (frames dropped after encoding)


def make_jobs(config: EvalConfig, env_seed: Callable[[int, int], int], out_dir: Path) -> list[Job]:
    """Every run of the evaluation, in report order: seed-major, then task (or chain), then episode."""
    groups = [(c,) if isinstance(c, str) else c for c in (config.chains or config.tasks)]
    jobs: list[Job] = []
    kept_videos: dict[int, int] = {}
    for eval_seed in config.seeds:
        for g, tasks in enumerate(groups):
            for episode in range(config.episodes):
                video = None
                if kept_videos.get(g, 0) < config.videos_per_task:
                    kept_videos[g] = kept_videos.get(g, 0) + 1
                    name = "chain_" + str(g) if config.chain_mode else tasks[0]
                    video = str(out_dir / "videos" / name / f"episode_{len(jobs):05d}.mp4")
                seed = env_seed(eval_seed, episode)
                jobs.append(Job(index=len(jobs), tasks=tasks, seeds=(seed,) * len(tasks), eval_seed=eval_seed,
                                video_path=video))  # fmt: skip
    return jobs


# --- worker side ---------------------------------------------------------------------------------------------


@dataclass
class _Worker:
    policy: ChunkPolicy
    make_env: Callable[[str, int], StepEnv]
    config: EvalConfig
    runtime: TargetRuntime


_WORKER: _Worker | None = None  # per process: set once by _init_worker


def _init_worker(
    make_policy: Callable[[], ChunkPolicy], make_env: Callable[[str, int], StepEnv], config: EvalConfig, threads: int
) -> None:
    global _WORKER
    policy = make_policy()  # may import torch: a fresh spawned worker has not yet
    if "torch" in sys.modules:  # workers share the cores: one policy must not spawn a thread per core each
        import torch

        torch.set_num_threads(threads)  # oversubscribed torch threads spin-wait: 3x slower rollouts were measured
    _WORKER = _Worker(policy, make_env, config, TargetRuntime(config.runtime))


def _release_worker() -> None:
    """Drop this process's policy; a remote one closes its connection (pool workers just exit)."""
    global _WORKER
    close = getattr(_WORKER.policy, "close", None) if _WORKER else None
    if close is not None:
        close()
    _WORKER = None


def _run_job(job: Job) -> JobResult:
    assert _WORKER is not None, "worker not initialised"
    w = _WORKER
    camera = w.config.video_camera if job.video_path else None
    scene = FreshEnvScene(w.make_env, job.seeds)
    results = run_chain(w.policy, scene, job.tasks, job.seeds, w.runtime, w.config.controller,
                        max_steps=w.config.max_steps, video_camera=camera)  # fmt: skip
    if job.video_path:
        from robo4d.eval.report import write_video

        write_video(Path(job.video_path), [r.frames for r in results if r.frames is not None], fps=w.config.video_fps)
    return JobResult(job=job, subtasks=[replace(r, frames=None) for r in results])


# --- driver --------------------------------------------------------------------------------------------------


def evaluate(
    config: EvalConfig,
    make_policy: Callable[[], ChunkPolicy],
    make_env: Callable[[str, int], StepEnv],
    env_seed: Callable[[int, int], int],
    out_dir: Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every job, write eval_info.json, videos and the success plot under `out_dir`; returns the info dict.

    The factories must be picklable (module-level functions or partials of them) when `workers > 1`.
    """
    from robo4d.eval.report import build_info, write_outputs

    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = make_jobs(config, env_seed, out_dir)
    start = time.perf_counter()
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    bar = tqdm(total=len(jobs), desc="eval", unit="run", disable=not progress)
    results: list[JobResult] = []
    if config.workers == 1:
        _init_worker(make_policy, make_env, config, threads)
        try:
            for job in jobs:
                results.append(_run_job(job))
                bar.update()
        finally:
            _release_worker()
    else:
        # spawn: neither torch's thread pools nor an EGL context survive a fork reliably.
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(config.workers, _init_worker, (make_policy, make_env, config, threads)) as pool:
            for result in pool.imap_unordered(_run_job, jobs):
                results.append(result)
                bar.update()
    bar.close()
    results.sort(key=lambda r: r.job.index)
    info = build_info(config, results, eval_s=time.perf_counter() - start, out_dir=out_dir)
    write_outputs(info, out_dir)
    return info
