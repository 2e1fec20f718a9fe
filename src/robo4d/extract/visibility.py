"""How much of an extraction survived: a loud warning, or a refusal, when too few point-frames are visible.

Lucas-Kanade on a video it cannot follow (motion blur, noise, a cut) loses almost every point after the query
frame; the columns would then hold points "held still" with visible=False, which trains nothing but looks like
data. So before the shard files become columns, the fraction of visible point-frames (over all T*N of the
camera) is compared with two thresholds: below `warn_below` (overall, or for any one episode) a warning names
the camera and the episodes on stderr; below `fail_below` overall the merge is refused with one line and the
shard files are kept, so a rerun with a lower threshold merges them without tracking again.
The outcome is recorded in meta/robo4d.json under "extract_visibility".<camera>.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robo4d import types
from robo4d.extract.errors import ExtractError

META_FIELD = "extract_visibility"  # meta/robo4d.json: {"extract_visibility": {<camera>: <report>}}
DEFAULT_WARN_BELOW = 0.15
DEFAULT_FAIL_BELOW = 0.05
_LISTED = 10  # episodes named in a message


@dataclass(frozen=True, kw_only=True)
class VisibilityThresholds:
    warn_below: float = DEFAULT_WARN_BELOW  # warn when under this fraction of point-frames is visible
    fail_below: float = DEFAULT_FAIL_BELOW  # refuse the tracks when under this fraction (overall) is visible

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_below <= self.warn_below <= 1.0:
            raise ExtractError(
                f"visibility thresholds need 0 <= --min-visible <= --warn-visible <= 1, got "
                f"{self.fail_below} and {self.warn_below}"
            )


def count_visible(files: dict[int, Path]) -> dict[int, tuple[int, int]]:
    """episode -> (visible point-frames, all point-frames), read from the episodes' track files."""
    counts = {}
    for episode, path in sorted(files.items()):
        with np.load(path) as f:
            visible = f["visible"]  # (T, N) bool
        counts[episode] = (int(visible.sum()), int(visible.size))
    return counts


def check_visibility(
    counts: dict[int, tuple[int, int]], camera: str, thresholds: VisibilityThresholds, *, where: Path
) -> dict[str, Any]:
    """Warn on stderr or raise ExtractError (see the module docstring); returns the report to record."""
    visible, total = (sum(c[i] for c in counts.values()) for i in (0, 1))
    overall = visible / max(total, 1)
    fractions = {e: v / max(n, 1) for e, (v, n) in counts.items()}
    low = {e: f for e, f in fractions.items() if f < thresholds.warn_below}
    listed = ", ".join(f"{e} ({f:.1%})" for e, f in sorted(low.items(), key=lambda x: x[1])[:_LISTED])
    listed += f" and {len(low) - _LISTED} more" if len(low) > _LISTED else ""
    if overall < thresholds.fail_below:
        raise ExtractError(
            f"{where}: camera {camera!r}: only {overall:.1%} of point-frames are visible (--min-visible "
            f"{thresholds.fail_below:g}); tracking failed on episodes {listed}; tracks not written, shard files kept "
            f"(a rerun with a lower --min-visible merges them without tracking again)"
        )
    if low:
        print(
            f"WARNING: {where}: camera {camera!r}: {overall:.1%} of point-frames visible overall; "
            f"{len(low)} of {len(counts)} episode(s) under --warn-visible {thresholds.warn_below:g}: {listed}. "
            "Their tracks are mostly held still; check those videos (blur, cuts, noise) or the tracker settings.",
            file=sys.stderr,
        )
    return {
        "visible_fraction": round(overall, 6),
        "warn_below": thresholds.warn_below,
        "fail_below": thresholds.fail_below,
        "low_episodes": {str(e): round(f, 6) for e, f in sorted(low.items())},
    }


def record_visibility(root: Path, camera: str, report: dict[str, Any]) -> None:
    path = root / types.ROBO4D_JSON
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.setdefault(META_FIELD, {})[camera] = report
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=4) + "\n")
    os.replace(tmp, path)
