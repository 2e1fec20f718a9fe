"""Generate the embedded datasets: scripted-expert robot demos and "human" videos with ground-truth tracks.

Episodes are made in worker processes (each builds its own env and renderer: neither survives a fork) and
written by the main process in job order, so a seed gives byte-identical parquet files whatever the worker
count. Each job's env seed follows `tasks.demo_seed`, which evaluation's seeds never meet.

Ground-truth tracks: human videos carry them for the ego camera; robot demos, when a grid is given, for the
front camera (the oracle against which extracted tracks are measured, e.g. in `robo4d bench`).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robo4d import types
from robo4d.world import tasks
from robo4d.world.env import DEFAULT_OPTIONS, WorldOptions

EXTRA_STEPS = 3  # steps recorded after the first success, so episodes show the task completed


@dataclass(frozen=True, kw_only=True)
class Job:
    kind: str  # "robot" or "human"
    task: str  # Meta-World task name
    seed: int  # env seed
    image_size: int
    max_steps: int
    grid: int = 0  # GxG ground-truth query grid (0: no ground-truth tracks; robot demos only)
    options: WorldOptions = DEFAULT_OPTIONS  # generalisation settings (e.g. wider initial-state ranges)


@dataclass(frozen=True)
class Episode:
    job: Job
    frames: dict[str, np.ndarray]  # dataset key -> (T, ...)
    success: bool


def _workspace_centre(env: Any) -> np.ndarray:
    """Between the hand and the task's first object: where a person would look."""
    hand = np.asarray(env._env.tcp_center)
    obj = np.asarray(env._env._get_pos_objects()[:3])
    return (hand + obj) / 2 if np.all(np.isfinite(obj)) else hand


def run_episode(job: Job) -> Episode:
    from robo4d.world.camera import EgoMotion
    from robo4d.world.env import WorldEnv
    from robo4d.world.tracks import anchor_queries, to_sensor_depth, track_frame

    human = job.kind == "human"
    cams = (types.CAM_EGO,) if human else (types.CAM_FRONT, types.CAM_WRIST)
    motion: list[EgoMotion] = []
    env = WorldEnv(
        job.task,
        seed=job.seed,
        image_size=job.image_size,
        cameras=cams,
        max_steps=job.max_steps,
        human=human,
        ego=(lambda f: motion[0].at(f, tasks.FPS)) if human else None,
        options=job.options,
    )
    gt_cam = types.CAM_EGO if human else types.CAM_FRONT
    try:
        env.reset_state()
        if human:  # aim the head camera at the scene it is about to film
            rng = np.random.default_rng(job.seed)
            motion.append(EgoMotion.sample(rng, job.max_steps + 1, centre=_workspace_centre(env)))
        obs = env.observe()
        rows: dict[str, list[np.ndarray]] = {}

        def put(key: str, value: Any) -> None:
            rows.setdefault(key, []).append(np.asarray(value))

        anchors = None
        success = False
        after = 0
        while True:
            for cam in cams:
                depth = to_sensor_depth(obs.depth[cam])
                put(types.image_key(cam), obs.images[cam])
                put(types.depth_key(cam), depth)
                put(types.intrinsics_key(cam), obs.intrinsics[cam])
                put(types.extrinsics_key(cam), obs.extrinsics[cam])
            if job.grid:
                pos, mat = env.body_poses()
                k, e = obs.intrinsics[gt_cam], obs.extrinsics[gt_cam].astype(np.float64)
                depth = rows[types.depth_key(gt_cam)][-1]
                if anchors is None:
                    bodies = env.render(gt_cam, segmentation=True)["body"]
                    anchors = anchor_queries(job.grid, depth, bodies, k, e, pos, mat)
                points, visible = track_frame(anchors, pos, mat, e, k, depth)
                put(types.gt_points_key(gt_cam), points)
                put(types.gt_points_visible_key(gt_cam), visible)
            action = env.expert_action()
            if not human:
                put(types.STATE, obs.state)
                put(types.ACTION, action)
            obs, _, succeeded, done = env.step(action)
            success = success or succeeded
            put(types.SUCCESS, success)
            after += success
            if done or after > EXTRA_STEPS:
                break
        return Episode(job, {key: np.stack(v) for key, v in rows.items()}, success)
    finally:
        env.close()


def features(kind: str, image_size: int, grid: int) -> dict[str, Any]:
    from robo4d.data.features import Feature

    hw = (image_size, image_size)
    cams = (types.CAM_EGO,) if kind == "human" else (types.CAM_FRONT, types.CAM_WRIST)
    out: dict[str, Feature] = {}
    for cam in cams:
        out[types.image_key(cam)] = Feature(dtype="video", shape=(*hw, 3), names=("height", "width", "channels"))
        out[types.depth_key(cam)] = Feature(dtype="uint16", shape=hw, names=("height", "width"))
        out[types.intrinsics_key(cam)] = Feature(dtype="float32", shape=(3, 3))
        out[types.extrinsics_key(cam)] = Feature(dtype="float32", shape=(4, 4))
    if grid:
        gt_cam = types.CAM_EGO if kind == "human" else types.CAM_FRONT
        out[types.gt_points_key(gt_cam)] = Feature(dtype="float32", shape=(grid * grid, 3))
        out[types.gt_points_visible_key(gt_cam)] = Feature(dtype="bool", shape=(grid * grid,))
    if kind != "human":
        state_names = ("x", "y", "z", "qw", "qx", "qy", "qz", "gripper")
        out[types.STATE] = Feature(dtype="float32", shape=(types.STATE_DIM,), names=state_names)
        out[types.ACTION] = Feature(
            dtype="float32", shape=(types.METAWORLD_ACTION_DIM,), names=("dx", "dy", "dz", "grip")
        )
    out[types.SUCCESS] = Feature(dtype="bool", shape=(1,))
    return out


def _episodes(jobs: list[Job], workers: int) -> Iterator[Episode]:
    if workers <= 1:
        yield from map(run_episode, jobs)
        return
    # spawn: an EGL context and MuJoCo's renderer do not survive a fork.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(run_episode, jobs)


def generate(
    kind: str,
    out: Path,
    *,
    task_names: tuple[str, ...],
    episodes: int,
    seed: int,
    image_size: int,
    max_steps: int,
    grid: int,
    workers: int,
    keep_failures: bool,
    preset: str,
    options: WorldOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """Write one dataset; returns the summary stored in meta/robo4d.json under "world"."""
    from robo4d.data.writer import DatasetWriter

    jobs = [
        Job(
            kind=kind,
            task=t,
            seed=tasks.demo_seed(seed, e),
            image_size=image_size,
            max_steps=max_steps,
            grid=grid,
            options=options,
        )
        for t in task_names
        for e in range(episodes)
    ]
    writer = DatasetWriter(
        out, fps=tasks.FPS, features=features(kind, image_size, grid), robot_type="sawyer" if kind == "robot" else None
    )
    start = time.perf_counter()
    kept, frames, recorded, per_task = 0, 0, 0, {t: [0, 0] for t in task_names}
    try:
        bar = tqdm(_episodes(jobs, workers), total=len(jobs), desc=f"world {kind}", unit="episode")
        for ep in bar:
            per_task[ep.job.task][0] += ep.success
            per_task[ep.job.task][1] += 1
            recorded += len(ep.frames[types.SUCCESS])  # rendered and simulated, whether kept or not
            if kind == "robot" and not ep.success and not keep_failures:
                continue
            writer.add_episode(
                ep.frames,
                task=tasks.INSTRUCTIONS[ep.job.task],
                extra={types.EPISODE_SUCCESS: ep.success, types.EPISODE_SEED: ep.job.seed},
            )
            kept += 1
            frames += len(ep.frames[types.SUCCESS])
            bar.set_postfix(frames=frames)
        seconds = time.perf_counter() - start
        summary = {
            "kind": kind,
            "preset": preset,
            "seed": seed,
            "image_size": image_size,
            "fps": tasks.FPS,
            "action_repeat": tasks.ACTION_REPEAT,
            "max_steps": max_steps,
            "grid": grid or None,
            "options": dataclasses.asdict(options),
            "tasks": {tasks.INSTRUCTIONS[t]: t for t in task_names},  # instruction -> Meta-World task
            "attempts": len(jobs),
            "kept": kept,
            "expert_success_rate": sum(s for s, _ in per_task.values()) / max(1, len(jobs)),
            "expert_success_per_task": {t: s / n for t, (s, n) in per_task.items() if n},
            "generation_seconds": round(seconds, 1),
            "frames": frames,
            "episodes_per_second": round(len(jobs) / seconds, 3),
            "steps_per_second": round(recorded / seconds, 1),  # recorded steps (every camera rendered)
            "env_steps_per_second": round(recorded * tasks.ACTION_REPEAT / seconds, 1),  # simulator steps
        }
        if kept == 0:
            raise RuntimeError(f"{out}: no episode kept ({len(jobs)} attempts, none successful)")
        writer.finalize(robo4d_meta={"world": summary})
    except BaseException:
        writer.abort()
        raise
    return summary
