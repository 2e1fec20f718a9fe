"""Train/serve parity of ARM4R's image path: the same observations through training's and serving's path.

    python benchmarks/parity.py [--episodes 2] [--image-size 128] [--max-steps 40] [--threads 2]

Training reads frozen-encoder tokens from the feature cache: frames written as h264 (the dataset writer's
settings), decoded, encoded, stored as float16. Serving encodes the robot's raw frames. For every step of a
few rendered Meta-World robot episodes this feeds one `arm4r-tiny` control policy (seeded random weights; no
trained checkpoint ships) three ways, each with its own episode context:
    raw_f32     raw frames, float32 tokens            (serving before cached_precision)
    raw_f16     raw frames, tokens rounded to float16 (serving now)
    decoded_f16 h264-decoded frames, float16 tokens   (what training saw)
and reports, against decoded_f16: token relative error (||a - b|| / ||b|| per frame) and the predicted
absolute action chunks' difference (xyz in mm, rotation angle in degrees, gripper). Prints JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")

from robo4d import types  # noqa: E402
from robo4d.data.reader import Dataset  # noqa: E402
from robo4d.data.writer import DatasetWriter  # noqa: E402
from robo4d.methods.arm4r import ARM4RPolicy, preset  # noqa: E402
from robo4d.methods.arm4r.geometry import quat_wxyz_to_matrix  # noqa: E402
from robo4d.nn.feature_cache import cached_precision  # noqa: E402
from robo4d.world import tasks  # noqa: E402
from robo4d.world.generate import Job, features, run_episode  # noqa: E402

PATHS = ("raw_f32", "raw_f16", "decoded_f16")


def episodes(n: int, image_size: int, max_steps: int, out: Path) -> list[tuple[dict, dict]]:
    """(raw frames, decoded frames) per episode: rendered, then written and read back by the dataset code."""
    jobs = [Job(kind="robot", task="reach-v3", seed=tasks.demo_seed(0, e), image_size=image_size,
                max_steps=max_steps) for e in range(n)]  # fmt: skip
    raw = [run_episode(job) for job in jobs]
    writer = DatasetWriter(out, fps=tasks.FPS, features=features("robot", image_size, 0), robot_type="sawyer")
    for ep in raw:
        writer.add_episode(ep.frames, task="reach", extra={types.EPISODE_SUCCESS: ep.success,
                                                           types.EPISODE_SEED: ep.job.seed})  # fmt: skip
    writer.finalize()
    ds = Dataset(out)
    return [(ep.frames, ds.read_episode(i)) for i, ep in enumerate(raw)]


def rotation_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between rotations given as (..., 4) wxyz quaternions, degrees."""
    ra, rb = quat_wxyz_to_matrix(torch.as_tensor(a)), quat_wxyz_to_matrix(torch.as_tensor(b))
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    policy = ARM4RPolicy(preset("arm4r-tiny", 3)).eval()
    encoder = policy.encoders().image
    cams = tuple(dict.fromkeys(policy.config.cameras))
    token_err: dict[str, list[float]] = {p: [] for p in PATHS[:2]}
    diffs: dict[str, dict[str, list[float]]] = {p: {"xyz_mm": [], "rot_deg": [], "gripper": []} for p in PATHS[:2]}
    with tempfile.TemporaryDirectory() as tmp:
        for raw, decoded in episodes(args.episodes, args.image_size, args.max_steps, Path(tmp) / "robot"):
            policies = {p: copy.deepcopy(policy) for p in PATHS}
            for t in range(len(raw[types.STATE])):
                tokens = {}
                for cam in cams:
                    key = types.image_key(cam)
                    fresh = encoder.encode(torch.from_numpy(raw[key][t : t + 1]))
                    tokens[cam] = {
                        "raw_f32": fresh,
                        "raw_f16": cached_precision(fresh),
                        "decoded_f16": cached_precision(encoder.encode(torch.from_numpy(decoded[key][t : t + 1]))),
                    }
                chunks = {}
                for path, p in policies.items():
                    # The policy encodes obs.images itself; hand it this path's tokens instead.
                    p.encoders().image = _Fixed({cam: tokens[cam][path] for cam in cams})  # type: ignore[misc]
                    obs = types.Observation(
                        images={cam: raw[types.image_key(cam)][t] for cam in cams},
                        state=raw[types.STATE][t].astype(np.float32), task="reach",
                    )  # fmt: skip
                    # raw_f32 is serving as it was: no rounding of the fresh tokens.
                    same = (lambda x: x) if path == "raw_f32" else cached_precision
                    with mock.patch("robo4d.methods.arm4r.policy.cached_precision", same):
                        chunks[path] = p.predict_action_chunk(obs).actions  # (K, 8)
                ref = chunks["decoded_f16"]
                for path in PATHS[:2]:
                    for cam in cams:
                        a, b = tokens[cam][path], tokens[cam]["decoded_f16"]
                        token_err[path].append(float((a - b).norm() / b.norm()))
                    d = chunks[path]
                    diffs[path]["xyz_mm"].append(float(np.abs(d[:, :3] - ref[:, :3]).max() * 1e3))
                    diffs[path]["rot_deg"].append(float(rotation_deg(d[:, 3:7], ref[:, 3:7]).max()))
                    diffs[path]["gripper"].append(float(np.abs(d[:, 7] - ref[:, 7]).max()))
    report: dict = {"encoder": encoder.name, "policy": "arm4r-tiny stage 3, seeded random weights",
                    "image_size": args.image_size, "steps": len(diffs["raw_f16"]["xyz_mm"]),
                    "against": "decoded_f16 (the training path)"}  # fmt: skip
    for path in PATHS[:2]:
        report[path] = {
            "token_rel_err": {"median": float(np.median(token_err[path])), "max": float(np.max(token_err[path]))},
            **{k: {"median": float(np.median(v)), "max": float(np.max(v))} for k, v in diffs[path].items()},
        }
    print(json.dumps(report, indent=2))


class _Fixed:
    """Stands in for the image encoder: returns given tokens per camera, in the policy's camera order."""

    def __init__(self, tokens: dict[str, torch.Tensor]) -> None:
        self.queue = list(tokens.values())

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.queue.pop(0)


if __name__ == "__main__":
    main()
