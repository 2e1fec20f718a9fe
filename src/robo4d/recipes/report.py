"""`report.md` of the demo: results table, loss curves, success chart, track visualisation, rollout videos."""

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


def _finding(results: dict[str, dict[str, Any]]) -> str:
    """One sentence: what pre-training changed overall, against the spread over evaluation seeds."""
    arm4r, scratch = results["arm4r"]["aggregated"], results["scratch"]["aggregated"]
    diff = arm4r["pc_success_mean"] - scratch["pc_success_mean"]
    spread = max(arm4r["pc_success_std"], scratch["pc_success_std"])
    if abs(diff) <= spread:
        verdict = "within the spread over evaluation seeds: at this scale pre-training made no measurable difference"
    else:
        verdict = "more than the spread over evaluation seeds: pre-training " + ("helped" if diff > 0 else "hurt")
    return f"**Finding:** pre-training changed overall success by {diff:+.1f} points ({verdict})."


def write_report(paths: DemoPaths, preset: DemoPreset, times: dict[str, float]) -> Path:
    from robo4d.data.reader import Dataset
    from robo4d.recipes.demo import POLICIES
    from robo4d.train.plot_commands import plot_run

    results = {name: _load_eval(paths.eval(name)) for name in POLICIES}
    comparison = _comparison_plot(results, paths.out / COMPARISON_PNG)
    curves = {name: plot_run(paths.run(name), paths.run(name) / "loss.png") for name in POLICIES}

    tasks = list(_per_task(results["arm4r"]))
    lines = [
        "# robo4d demo: ARM4R on the embedded Meta-World world",
        "",
        f"Preset: model `{preset.model}`, world `{preset.world}`, {preset.robot_episodes} demos per robot task; "
        f"steps stage1/stage2/control = {preset.stage1_steps}/{preset.stage2_steps}/{preset.control_steps}, "
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
    lines += ["", _finding(results)]
    lines += [
        "",
        "`arm4r`: stage 1 (3D point motion on human video) -> stage 2 (points on robot video) -> stage 3 (control).",
        "`scratch`: the same control stage, same data and steps, from random weights.",
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
