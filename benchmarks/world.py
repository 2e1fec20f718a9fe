"""Generation speed of the embedded world and the exactness of its ground truth; prints JSON.

    python benchmarks/world.py [--episodes 2] [--workers 2]

Speed: episodes/s and recorded env steps/s of `robo4d world robot` and `robo4d world human` (each recorded
step renders every camera's RGB + depth; human steps also compute ground-truth tracks). Exactness: GT 3D
points projected with the stored intrinsics and lifted again with the stored depth (bilinear between pixel
centres) must reproduce themselves: median error over visible points < 1 mm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from robo4d import types  # noqa: E402
from robo4d.data.reader import Dataset  # noqa: E402
from robo4d.world import tasks  # noqa: E402
from robo4d.world.generate import generate  # noqa: E402
from robo4d.world.tracks import lift_errors  # noqa: E402


def dataset_lift_errors(root: Path, cam: str = types.CAM_EGO) -> np.ndarray:
    """`world.tracks.lift_errors` over every episode of a human dataset."""
    ds = Dataset(root)
    keys = [types.gt_points_key(cam), types.gt_points_visible_key(cam), types.depth_key(cam), types.intrinsics_key(cam)]
    episodes = (ds.read_episode(ep, keys) for ep in range(ds.num_episodes))
    return np.concatenate([lift_errors(*(e[k] for k in keys)) for e in episodes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2, help="episodes per task")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    preset = tasks.world_preset("default")
    result: dict[str, object] = {"machine": f"{os.cpu_count()} CPU cores", "image_size": args.image_size}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, names in (("robot", preset.robot_tasks[:4]), ("human", preset.human_tasks[:4])):
            summary = generate(
                kind, Path(tmp) / kind, task_names=names, episodes=args.episodes, seed=0,
                image_size=args.image_size, max_steps=preset.max_steps, grid=preset.grid, workers=args.workers,
                keep_failures=True, preset="default",
            )  # fmt: skip
            result[kind] = {
                k: summary[k]
                for k in (
                    "attempts",
                    "expert_success_rate",
                    "generation_seconds",
                    "episodes_per_second",
                    "steps_per_second",
                    "env_steps_per_second",
                )
            }
        errors = dataset_lift_errors(Path(tmp) / "human")
        result["gt_lift_error_m"] = {
            "median": float(np.median(errors)),
            "mean": float(np.mean(errors)),
            "p90": float(np.percentile(errors, 90)),
            "points": int(errors.size),
            "median_below_1mm": bool(np.median(errors) < 1e-3),
        }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
