"""Evaluation outputs: eval_info.json in LeRobot's schema, a success bar chart (PNG), rollout videos (mp4).

eval_info.json, per-episode mode (LeRobot's keys, plus robo4d's):
    per_episode: [{episode_ix, task, seed, eval_seed, sum_reward, max_reward, success, steps, queries}]
    per_task:    [{task, metrics: {pc_success, avg_sum_reward, avg_max_reward, n_episodes,
                                   pc_success_per_seed: {eval_seed: %}, pc_success_mean, pc_success_std},
                   video_paths: [...]}]
    aggregated:  {pc_success, avg_sum_reward, avg_max_reward, n_episodes, eval_s, eval_ep_s,
                  pc_success_per_seed, pc_success_mean, pc_success_std}
`seed` is the env seed of the initial state; `pc_success_per_seed` groups episodes by evaluation seed and
`pc_success_mean/std` are over those groups (population std; 0 with one seed).
Chain mode (CALVIN's metrics) replaces per_task with per_chain / per_run and aggregates
`success_at` {"1": % of runs completing >= 1 subtask, ..., "n": ...} and `avg_len` (subtasks completed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from robo4d.eval.evaluate import EvalConfig, JobResult

EVAL_INFO_FILE = "eval_info.json"
PLOT_FILE = "success.png"
VIDEO_CRF = 23  # h264 quality: visually clean at small file sizes


def _pc(values: list[bool]) -> float:
    return 100.0 * float(np.mean(values)) if values else 0.0


def _success_stats(results: list[JobResult], success: Any) -> dict[str, Any]:
    """pc_success per evaluation seed and its mean/std over seeds; `success(result)` -> bool."""
    per_seed: dict[int, list[bool]] = {}
    for r in results:
        per_seed.setdefault(r.job.eval_seed, []).append(bool(success(r)))
    pcs = {str(seed): _pc(v) for seed, v in per_seed.items()}
    values = list(pcs.values())
    return {
        "pc_success_per_seed": pcs,
        "pc_success_mean": float(np.mean(values)),
        "pc_success_std": float(np.std(values)),
    }


def _episode_metrics(results: list[JobResult]) -> dict[str, Any]:
    episodes = [r.subtasks[0] for r in results]
    return {
        "pc_success": _pc([e.success for e in episodes]),
        "avg_sum_reward": float(np.mean([e.sum_reward for e in episodes])),
        "avg_max_reward": float(np.mean([e.max_reward for e in episodes])),
        "n_episodes": len(episodes),
        **_success_stats(results, lambda r: r.subtasks[0].success),
    }


def _completed(r: JobResult) -> int:
    return sum(1 for s in r.subtasks if s.success)


def _chain_metrics(results: list[JobResult], length: int) -> dict[str, Any]:
    completed = [_completed(r) for r in results]
    return {
        "success_at": {str(i): _pc([c >= i for c in completed]) for i in range(1, length + 1)},
        "avg_len": float(np.mean(completed)),
        "n_runs": len(results),
        **_success_stats(results, lambda r: _completed(r) == len(r.job.tasks)),
    }


def build_info(config: EvalConfig, results: list[JobResult], *, eval_s: float, out_dir: Path) -> dict[str, Any]:
    """The eval_info.json dict (see the module docstring) for results in job order."""

    def video(r: JobResult) -> list[str]:
        return [str(Path(r.job.video_path).relative_to(out_dir))] if r.job.video_path else []

    timing = {"eval_s": eval_s, "eval_ep_s": eval_s / max(1, len(results))}
    if not config.chain_mode:
        per_episode = [
            {"episode_ix": r.job.index, "task": e.task, "seed": e.seed, "eval_seed": r.job.eval_seed,
             "sum_reward": e.sum_reward, "max_reward": e.max_reward, "success": e.success, "steps": e.steps,
             "queries": e.queries}
            for r in results
            for e in r.subtasks[:1]
        ]  # fmt: skip
        per_task = []
        for task in config.tasks:
            mine = [r for r in results if r.job.tasks == (task,)]
            per_task.append({"task": task, "metrics": _episode_metrics(mine), "video_paths": sum(map(video, mine), [])})
        return {"per_episode": per_episode, "per_task": per_task,
                "aggregated": {**_episode_metrics(results), **timing}}  # fmt: skip
    per_run = [
        {"run_ix": r.job.index, "tasks": list(r.job.tasks), "seed": r.job.seeds[0], "eval_seed": r.job.eval_seed,
         "completed": _completed(r),
         "subtasks": [{"task": s.task, "seed": s.seed, "success": s.success, "steps": s.steps,
                       "sum_reward": s.sum_reward} for s in r.subtasks]}
        for r in results
    ]  # fmt: skip
    per_chain = []
    for chain in config.chains:
        mine = [r for r in results if r.job.tasks == chain]
        per_chain.append({"tasks": list(chain), "metrics": _chain_metrics(mine, len(chain)),
                          "video_paths": sum(map(video, mine), [])})  # fmt: skip
    longest = max(len(c) for c in config.chains)
    return {"per_run": per_run, "per_chain": per_chain, "aggregated": {**_chain_metrics(results, longest), **timing}}


def write_outputs(info: dict[str, Any], out_dir: Path) -> None:
    """eval_info.json and the success bar chart."""
    (out_dir / EVAL_INFO_FILE).write_text(json.dumps(info, indent=2))
    plot_success(info, out_dir / PLOT_FILE)


def plot_success(info: dict[str, Any], path: Path) -> None:
    """Bar chart: % success per task with std over evaluation seeds (chain mode: % completing 1..n subtasks)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on eval machines
    import matplotlib.pyplot as plt

    if "per_task" in info:
        labels = [t["task"] for t in info["per_task"]] + ["overall"]
        metrics = [t["metrics"] for t in info["per_task"]] + [info["aggregated"]]
        values = [m["pc_success"] for m in metrics]
        errors = [m["pc_success_std"] for m in metrics]
        title = f"success over {info['aggregated']['n_episodes']} episodes"
    else:
        at = info["aggregated"]["success_at"]
        labels, values, errors = [f"{i} in a row" for i in at], list(at.values()), None
        title = f"chains: avg length {info['aggregated']['avg_len']:.2f} over {info['aggregated']['n_runs']} runs"
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 1.5), 3.5))
    ax.bar(range(len(labels)), values, yerr=errors, capsize=3, color="tab:blue")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("success (%)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_video(path: Path, segments: list[np.ndarray], *, fps: int) -> None:
    """One mp4 of consecutive (T, H, W, 3) uint8 segments (a chain's subtasks play one after another)."""
    from robo4d.data.video import VideoFileWriter

    if not segments:
        return
    h, w = segments[0].shape[1:3]
    writer = VideoFileWriter(path, fps=fps, height=h, width=w, crf=VIDEO_CRF, gop=2 * fps)
    try:
        for frames in segments:
            writer.append(frames)
    finally:
        writer.close()
