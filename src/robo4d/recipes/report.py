"""`report.md` of the demo: results table, intervals and paired differences, loss curves, success chart, track
visualisation, rollout videos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robo4d.recipes.demo import DemoPaths, DemoPreset

COMPARISON_PNG = "success_comparison.png"


def _load_eval(path: Path) -> dict[str, Any]:
    from robo4d.eval.report import EVAL_INFO_FILE

    return json.loads((path / EVAL_INFO_FILE).read_text())


def _per_task(info: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {t["task"]: t["metrics"] for t in info["per_task"]}


def _cell(metrics: dict[str, float]) -> str:
    return f"{metrics['pc_success_mean']:.1f} ± {metrics['pc_success_std']:.1f}"


def _comparison_plot(results: dict[str, dict[str, Any]], out: Path) -> Path:
    """Grouped bars: success per task (mean over seeds, std as error bars), one colour per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = list(_per_task(next(iter(results.values()))))
    x = np.arange(len(tasks) + 1)
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(x)), 4))
    for i, (name, info) in enumerate(results.items()):
        per_task = _per_task(info)
        means = [per_task[t]["pc_success_mean"] for t in tasks] + [info["aggregated"]["pc_success_mean"]]
        stds = [per_task[t]["pc_success_std"] for t in tasks] + [info["aggregated"]["pc_success_std"]]
        ax.bar(x + (i - (len(results) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=name)
    ax.set_xticks(x, [*tasks, "overall"], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 105)
    ax.legend()
    ax.set_title("Closed-loop success on held-out initial states (mean ± std over eval seeds)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _intervals(results: dict[str, dict[str, Any]], baseline: str, demos: int) -> list[str]:
    """Each policy as a bench cell (one training seed, the held-out episodes as samples): its 95% bootstrap
    interval, the paired difference to the baseline, and the best-resolved difference as the headline."""
    from robo4d.recipes.bench_report import most_informative, summarise

    cells = [
        {"key": name, "cell": {"method": name, "human": "none", "tracks": "any", "setting": "default",
                               "demos": demos, "seed": 0},
         "episodes": [{"task": e["task"], "seed": e["seed"], "success": e["success"]} for e in info["per_episode"]]}
        for name, info in results.items()
    ]  # fmt: skip
    rows = summarise(cells, baseline)
    lines = [
        "| policy | success % [95% interval] | Δ " + baseline + " [95%, paired by initial state] |",
        "|---|---|---|",
    ]
    for r in rows:
        s, d = r["success"], r["vs_baseline"]
        diff = f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]" if d else "–"
        lines.append(f"| {r['method']} | {s['mean']:.1f} [{s['low']:.1f}, {s['high']:.1f}] | {diff} |")
    best = most_informative(rows)
    if best is None:
        return [*lines, "", "**Most informative cell:** none (only the baseline was trained)."]
    d = best["vs_baseline"]
    verdict = "above zero" if d["low"] > 0 else "below zero" if d["high"] < 0 else "includes zero"
    return [*lines, "", f"**Most informative cell:** `{best['method']}` at {demos} demos per task: "
            f"{d['mean']:+.1f} points against `{baseline}`, 95% interval [{d['low']:+.1f}, {d['high']:+.1f}] "
            f"({verdict}; one training seed, {d['episodes']} held-out initial states; `robo4d bench` adds "
            "training seeds)."]  # fmt: skip


def write_report(
    paths: DemoPaths, preset: DemoPreset, times: dict[str, float], *, policies: tuple[str, ...], baseline: str
) -> Path:
    from robo4d.data.reader import Dataset
    from robo4d.train.plot_commands import plot_run
    from robo4d.train.recipes import recipe

    results = {name: _load_eval(paths.eval(name)) for name in policies}
    comparison = _comparison_plot(results, paths.out / COMPARISON_PNG)
    curves = {name: plot_run(paths.run(name), paths.run(name) / "loss.png") for name in policies}

    tasks = list(_per_task(results[baseline]))
    lines = [
        "# robo4d demo: pre-training on human video, on the embedded Meta-World world",
        "",
        f"Preset: each recipe's default model, world `{preset.world}`, {preset.robot_episodes} demos per robot "
        f"task; steps first pre-training stage/later ones/policy stage = {preset.stage1_steps}/"
        f"{preset.stage2_steps}/{preset.control_steps}, "
        f"batch {preset.batch_size}; evaluation: {preset.eval_episodes} episodes per task for each of seeds "
        f"{list(preset.eval_seeds)}, on initial states never used for the training demos.",
        "",
        "## Success rate (%) per task, mean ± std over evaluation seeds",
        "",
        "| task | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for task in tasks:
        lines.append(f"| {task} | " + " | ".join(_cell(_per_task(info)[task]) for info in results.values()) + " |")
    overall = (f"**{_cell(info['aggregated'])}**" for info in results.values())
    lines.append("| **overall** | " + " | ".join(overall) + " |")
    lines += ["", "## Each policy against the baseline", "", *_intervals(results, baseline, preset.robot_episodes)]
    lines += ["", "Recipes:"]
    lines += [f"- `{name}`: {recipe(name).description}" for name in results]
    lines += [
        "",
        f"![success per task]({comparison.name})",
        "",
        "## Loss curves",
        "",
    ]
    lines += [f"![{name} losses]({p.relative_to(paths.out)})" for name, p in curves.items()]
    human, robot = Dataset(paths.human), Dataset(paths.robot)
    lines += [
        "",
        "## Data",
        "",
        f"- human videos: {human.num_episodes} episodes, {human.num_frames} frames, tasks: "
        + ", ".join(sorted(set(human.tasks))),
        f"- robot demos: {robot.num_episodes} episodes, {robot.num_frames} frames, tasks: "
        + ", ".join(sorted(set(robot.tasks))),
        "",
        "Extracted 3D tracks on a human video (left: tracks over the frames; right: 3D trajectories):",
        "",
    ]
    lines += [f"- [{p.name}]({p.relative_to(paths.out)})" for p in sorted(paths.viz.glob("*.mp4"))]
    lines += [f"![tracks]({p.relative_to(paths.out)})" for p in sorted(paths.viz.glob("*.png"))]
    lines += ["", "## Rollout videos", ""]
    for name, info in results.items():
        for task in info["per_task"]:
            links = ", ".join(f"[{Path(v).name}]({Path('eval') / name / v})" for v in task.get("video_paths", []))
            if links:
                lines.append(f"- {name} / {task['task']}: {links}")
    lines += ["", "## Run time (s, this machine, first run of each step)", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {step} | {seconds:.0f} |" for step, seconds in times.items()]
    lines.append(f"| **total** | **{sum(times.values()):.0f}** |")
    paths.report.write_text("\n".join(lines) + "\n")
    return paths.report
