"""The bench's outputs: report.md (table, levers, curves), data_efficiency.png and bench.json (every cell).

Rows are groups of cells that differ only by training seed. Each row gives success (mean ± std over seeds,
95% bootstrap interval over seeds and initial states) and the paired difference to scratch at the same demo
count and setting. The lever table compares rows that differ in one axis only (human data, track source,
method variant), paired the same way, so each lever's effect is measured, not inferred. Settings are evaluated on
states of their own, so a setting lever compares what the method gains over the baseline in each setting.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from robo4d.recipes.bench_stats import (
    Interval,
    bootstrap_interval,
    gain_difference,
    paired_difference,
    resolvable_difference,
    success_matrix,
)

DEFAULT_BASELINE = "scratch"  # the recipe other methods are compared with, unless the preset names another
REPORT, CURVES, CELLS_JSON = "report.md", "data_efficiency.png", "bench.json"
AXES = ("method", "human", "tracks", "setting", "demos")


def group_results(results: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[tuple(r["cell"][a] for a in AXES)].append(r)
    return dict(groups)


def _baseline(groups: dict[tuple, list[dict]], group: tuple, baseline: str) -> list[dict] | None:
    method, _, _, setting, demos = group
    if method == baseline:
        return None
    return next((g for k, g in groups.items() if k[0] == baseline and k[3] == setting and k[4] == demos), None)


def summarise(results: list[dict[str, Any]], baseline: str = DEFAULT_BASELINE) -> list[dict[str, Any]]:
    """One row per group: its axes, success interval and paired difference to the baseline (None where absent)."""
    groups = group_results(results)
    rows = []
    for key in sorted(groups, key=lambda k: (k[3], k[4], k[0] != baseline, k)):
        cells = groups[key]
        base = _baseline(groups, key, baseline)
        diff = paired_difference(cells, base) if base else None
        rows.append({
            **dict(zip(AXES, key, strict=True)),
            "success": bootstrap_interval(success_matrix(cells)[0]).as_dict(),
            "vs_baseline": diff.as_dict() if diff else None,
            "cells": sorted(c["key"] for c in cells),
        })  # fmt: skip
    return rows


def levers(results: list[dict[str, Any]], baseline: str = DEFAULT_BASELINE) -> list[dict[str, Any]]:
    """Pairs of groups that differ in exactly one axis (not demos): the effect of changing that axis. Two settings
    never share initial states, so for that axis the lever is the difference of the gains over the baseline."""
    groups = group_results(results)
    out = []
    for axis_i, axis in enumerate(AXES[:-1]):
        by_rest: dict[tuple, dict[str, tuple]] = defaultdict(dict)
        for key in groups:
            if axis == "method" or baseline not in key:
                by_rest[key[:axis_i] + key[axis_i + 1 :]][key[axis_i]] = key
        for rest, variants in sorted(by_rest.items()):
            names = sorted(variants)
            for a_i, a in enumerate(names):
                for b in names[a_i + 1 :]:
                    ka, kb = variants[a], variants[b]
                    if axis != "setting":
                        diff = paired_difference(groups[ka], groups[kb])
                    else:
                        base_a, base_b = _baseline(groups, ka, baseline), _baseline(groups, kb, baseline)
                        diff = gain_difference(groups[ka], base_a, groups[kb], base_b) if base_a and base_b else None
                    if diff is not None:
                        where = dict(zip([x for x in AXES if x != axis], rest, strict=True))
                        out.append({"axis": axis, "a": a, "b": b, "where": where, "a_minus_b": diff.as_dict()})
    return out


def most_informative(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row whose paired difference to scratch is best resolved: largest |mean| / interval half-width."""
    scored = [r for r in rows if r["vs_baseline"]]
    if not scored:
        return None

    def resolution(r: dict[str, Any]) -> float:
        d = r["vs_baseline"]
        return abs(d["mean"]) / max((d["high"] - d["low"]) / 2, 1e-9)

    return max(scored, key=resolution)


def _fmt(i: dict[str, Any] | Interval | None, signed: bool = False) -> str:
    if i is None:
        return "–"
    d = i.as_dict() if isinstance(i, Interval) else i
    sign = "+" if signed else ""
    return f"{d['mean']:{sign}.1f} [{d['low']:{sign}.1f}, {d['high']:{sign}.1f}]"


def _curves(rows: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({r["setting"] for r in rows})
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 4), squeeze=False)
    for ax, setting in zip(axes[0], settings, strict=True):
        lines: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            if r["setting"] == setting:
                lines[
                    " / ".join(str(r[a]) for a in ("method", "human", "tracks") if r[a] not in ("none", "any"))
                ].append(r)
        dodge = 0.06 * (len(lines) - 1)  # methods at one demo count sit side by side, so their bars stay apart
        for i, (label, points) in enumerate(sorted(lines.items())):
            points.sort(key=lambda r: r["demos"])
            x = [p["demos"] - dodge / 2 + 0.06 * i for p in points]
            mean = [p["success"]["mean"] for p in points]
            low, high = [p["success"]["low"] for p in points], [p["success"]["high"] for p in points]
            (line,) = ax.plot(x, mean, marker="o", label=label)
            ax.fill_between(x, low, high, alpha=0.15, color=line.get_color())  # a band where a line has 2+ counts
            yerr = [[m - lo for m, lo in zip(mean, low, strict=True)], [h - m for m, h in zip(mean, high, strict=True)]]
            ax.errorbar(x, mean, yerr=yerr, color=line.get_color(), capsize=3, linestyle="none")
        demo_counts = sorted({r["demos"] for r in rows if r["setting"] == setting})
        ax.set_xticks(demo_counts)
        ax.set_xlim(demo_counts[0] - 1, demo_counts[-1] + 1)
        ax.set_xlabel("robot demos per task")
        ax.set_ylabel("success (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"setting: {setting} (95% bootstrap intervals)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_report(
    results: list[dict[str, Any]], out: Path, *, planned: int | None = None, title: str = "robo4d bench"
) -> Path:
    """report.md, data_efficiency.png and bench.json under `out` from every finished cell (`planned`: how many
    cells the preset declares, so a partial grid says how partial it is)."""
    if not results:
        raise ValueError(f"{out}: no finished cells to report")
    budget = results[0]["config"]["budget"]
    rows, lever_rows = summarise(results, budget["baseline"]), levers(results, budget["baseline"])
    out.mkdir(parents=True, exist_ok=True)
    (out / CELLS_JSON).write_text(json.dumps({"groups": rows, "levers": lever_rows, "cells": results}, indent=1))
    curves = _curves(rows, out / CURVES)
    n_eps = len(results[0]["episodes"])
    seeds = max(r["success"]["seeds"] for r in rows)
    lines = [
        f"# {title}",
        "",
        f"{len(results)} cells"
        + (f" of the {planned} the preset declares" if planned and planned >= len(results) else "")
        + (
            f" (the preset declares {planned}; the others are lever runs in the same folder)"
            if planned and planned < len(results)
            else ""
        )
        + f". Each recipe's default model preset, steps x{budget['steps_scale']}, batch "
        f"{budget['batch_size']}. Evaluation fixed before training: {n_eps} episodes per cell "
        f"({budget['eval_episodes']} per task x {len(budget['tasks'])} tasks x evaluation seeds "
        f"{budget['eval_seeds']}), on held-out initial states shared by every cell. With {seeds} training "
        f"seeds an unpaired difference of {resolvable_difference(n_eps, seeds):.1f} points is resolvable at 95% "
        "(success near 50%); paired differences, whose shared difficulty cancels, resolve smaller ones.",
        "",
        "Success %: mean ± std over training seeds, [95% bootstrap interval over seeds and initial states]. "
        f"Δ {budget['baseline']}: paired by training seed and initial state.",
        "",
        "| method | human data | tracks | setting | demos/task | seeds | success | 95% interval "
        f"| Δ {budget['baseline']} [95%] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["success"]
        lines.append(f"| {r['method']} | {r['human']} | {r['tracks']} | {r['setting']} | {r['demos']} | {s['seeds']} "
                     f"| {s['mean']:.1f} ± {s['std']:.1f} | [{s['low']:.1f}, {s['high']:.1f}] "
                     f"| {_fmt(r['vs_baseline'], signed=True)} |")  # fmt: skip
    best = most_informative(rows)
    if best:
        lines += ["", f"**Most informative cell:** {best['method']} ({best['human']} human data, {best['tracks']} "
                  f"tracks, {best['setting']}, {best['demos']} demos/task): {_fmt(best['vs_baseline'], True)} "
                  f"points against {budget['baseline']}."]  # fmt: skip
    lines += ["", "## Levers (rows differing in one axis; a − b, paired)", ""]
    if any(lv["axis"] == "setting" for lv in lever_rows):
        lines += [
            f"Setting rows: Δ {budget['baseline']} in setting a − Δ {budget['baseline']} in setting b (each "
            "setting is evaluated on its own initial states, so only gains compare across settings).",
            "",
        ]
    if lever_rows:
        lines += ["| axis | a | b | where | a − b [95%] |", "|---|---|---|---|---|"]
        for lv in lever_rows:
            where = ", ".join(f"{k}={v}" for k, v in lv["where"].items() if v not in ("none", "any"))
            lines.append(f"| {lv['axis']} | {lv['a']} | {lv['b']} | {where} | {_fmt(lv['a_minus_b'], True)} |")
    else:
        lines.append("No two groups of this grid differ in exactly one axis.")
    lines += ["", "## Data efficiency", "", f"![success vs demos]({curves.name})", "",
              f"Every cell (configuration, per-episode outcomes, timings): `{CELLS_JSON}`."]  # fmt: skip
    report = out / REPORT
    report.write_text("\n".join(lines) + "\n")
    return report
