"""Training-step speed of ARM4R on CPU through the trainer's pieces; prints one JSON object.

    .venv/bin/python benchmarks/train.py [--steps 5] [--batch 8]

- arm4r-tiny control stage, same model and batch, side by side: image tokens served from a token table (what
  the frozen-feature cache gives the windows) vs. encoding the uint8 frames with the frozen
  EfficientNet-Lite0 inside every step (what the release does). Reports samples/s and step time of each.
- arm4r-base control stage: forward + backward + AdamW step time at batch 2 (tokens as the cache serves them).
- trunks: arm4r-tiny against arm4r-mini at the bench's batch of 32, stages 1 and 3 side by side, the training
  time of one ARM4R cell of the medium bench preset they imply, and ViT-B's frames/s (arm4r-mini's encoder).
- peak memory: the process's max RSS (torch keeps no allocator peak on CPU).
The text encoder is a fixed-vector stand-in (embeddings are cached per string in training anyway); the image
encoder of the no-cache column is the real one, so its cost is what the cache saves.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import zlib
from dataclasses import replace

import torch

from robo4d import types
from robo4d.methods.arm4r.config import preset
from robo4d.methods.base import build_policy
from robo4d.train.optim import OptimConfig, build_optimizer

FRAME_SIDE = 128  # frames of the embedded world's cameras


class _TextStandIn:
    """A fixed random vector per distinct string (embedding cost is paid once per instruction in training)."""

    def __init__(self, dim: int) -> None:
        self.name, self.dim = "bench-text", dim

    def encode(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode())))
                            for t in texts])  # fmt: skip


class _TokenTable:
    """A token table standing in for the on-disk cache: stored float16, looked up per frame, as the cache."""

    def __init__(self, encoder, frames: torch.Tensor) -> None:  # noqa: ANN001
        with torch.no_grad():
            self.tokens = torch.cat([encoder.encode(f) for f in frames.split(64)]).half()  # (F, L, C)

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        return self.tokens[index].float()


def _states(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    s = torch.randn(*shape, 8, generator=g)
    s[..., 3:7] /= s[..., 3:7].norm(dim=-1, keepdim=True)
    return s


def _step_time(policy, make_batch, steps: int) -> float:  # noqa: ANN001
    """Median seconds of one training step (batch assembly + loss + backward + AdamW), after one warm-up."""
    opt = build_optimizer(policy, OptimConfig())
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss, _ = policy.compute_loss(make_batch(i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def bench_tiny(batch: int, steps: int) -> dict:
    from robo4d.nn.encoders import build_image_encoder

    cfg = preset("arm4r-tiny", 3)
    encoder = build_image_encoder(cfg.image_encoder, weights=cfg.image_weights, image_size=cfg.image_size)
    torch.manual_seed(0)
    policy = build_policy("arm4r", cfg)
    policy.use_encoders(image=encoder, text=_TextStandIn(cfg.text_dim))
    g = torch.Generator().manual_seed(0)
    t = cfg.seq_len + cfg.horizon
    num_frames = 4 * batch * t
    frames = torch.randint(0, 256, (num_frames, FRAME_SIDE, FRAME_SIDE, 3), dtype=torch.uint8, generator=g)
    table = _TokenTable(encoder, frames)
    cams = list(dict.fromkeys(cfg.cameras))

    def batch_of(i: int, cached: bool) -> dict:
        index = (torch.arange(batch * t).reshape(batch, t) + i * batch * t) % num_frames  # (B, T+K)
        out = {types.PAD_MASK: torch.zeros(batch, t, dtype=torch.bool), types.TASK: ["push the button"] * batch,
               types.STATE: _states((batch, t), torch.Generator().manual_seed(i))}  # fmt: skip
        for cam in cams:
            if cached:
                out[types.image_tokens_key(cam)] = table(index)  # (B, T+K, L, C)
            else:
                with torch.no_grad():
                    out[types.image_tokens_key(cam)] = encoder.encode(frames[index.flatten()]).reshape(
                        batch, t, cfg.image_tokens, cfg.image_dim
                    )
        return out

    result = {}
    for name, cached in (("with_cache", True), ("without_cache", False)):
        step = _step_time(policy, lambda i, c=cached: batch_of(i, c), steps)
        result[name] = {"step_s": round(step, 4), "samples_per_s": round(batch / step, 2)}
    result["speedup"] = round(result["without_cache"]["step_s"] / result["with_cache"]["step_s"], 2)
    return {"preset": "arm4r-tiny", "stage": 3, "batch": batch, **result}


def _token_policy(cfg, batch: int) -> tuple:  # noqa: ANN001
    """(an ARM4R policy of `cfg` seeded at 0, one training batch of random tokens and targets of `cfg`'s shapes).
    The image encoder is a stand-in whose sizes alone are checked: tokens come from the batch, as the cache
    serves them."""
    torch.manual_seed(0)
    policy = build_policy("arm4r", cfg)

    class _ImageShape:
        name, num_tokens, dim = "bench-image", cfg.image_tokens, cfg.image_dim

    policy.use_encoders(image=_ImageShape(), text=_TextStandIn(cfg.text_dim))
    g = torch.Generator().manual_seed(0)
    t = cfg.seq_len + cfg.horizon
    data = {types.PAD_MASK: torch.zeros(batch, t, dtype=torch.bool), types.TASK: ["push the button"] * batch}
    for cam in dict.fromkeys(cfg.cameras):
        data[types.image_tokens_key(cam)] = torch.randn(batch, t, cfg.image_tokens, cfg.image_dim, generator=g)
    if cfg.objective == "points":
        data[cfg.points_prefix + cfg.points_camera] = torch.randn(batch, t, cfg.num_points, 3, generator=g)
        data[types.GT_POINTS_VISIBLE_PREFIX + cfg.points_camera] = torch.ones(batch, t, cfg.num_points, dtype=bool)
    else:
        data[types.STATE] = _states((batch, t), g)
    return policy, data


def bench_base(steps: int) -> dict:
    b = 2
    policy, batch = _token_policy(preset("arm4r-base", 3), b)
    trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    step = _step_time(policy, lambda i: batch, steps)
    return {"preset": "arm4r-base", "stage": 3, "batch": b, "trainable_params": trainable, "step_s": round(step, 3)}


def bench_trunks(batch: int, steps: int) -> dict:
    """arm4r-tiny against arm4r-mini (the release's smallest trunk, on ViT-B tokens) at the bench's batch: step
    time of stage 1 (points) and stage 3 (control), side by side, the medium bench preset's training time per
    ARM4R cell that implies, and the frozen ViT-B's encoding rate (random weights: the cost, not the features)."""
    from robo4d.nn.encoders import build_image_encoder
    from robo4d.recipes import bench
    from robo4d.train.recipes import RecipeInputs, recipe

    medium = bench.PRESETS["medium"]
    stages = recipe("arm4r-3stage").stages(RecipeInputs(human=("h",), robot=("r",)), name="arm4r-3stage")
    medium_steps = {s.name: max(1, round(s.steps * medium.steps_scale)) for s in stages}
    points = medium.track_grid**2
    out: dict = {"batch": batch, "points": points, "medium_steps": medium_steps}
    for name in ("arm4r-tiny", "arm4r-mini"):
        times = {}
        for stage in (1, 3):
            cfg = preset(name, stage)
            policy, data = _token_policy(replace(cfg, num_points=points) if stage == 1 else cfg, batch)
            times[stage] = _step_time(policy, lambda i, d=data: d, steps)
        train_s = times[1] * (medium_steps["stage1"] + medium_steps["stage2"]) + times[3] * medium_steps["stage3"]
        out[name] = {"stage1_step_s": round(times[1], 4), "stage3_step_s": round(times[3], 4),
                     "medium_cell_train_s": round(train_s)}  # fmt: skip
    tiny, mini = out["arm4r-tiny"]["medium_cell_train_s"], out["arm4r-mini"]["medium_cell_train_s"]
    out["mini_over_tiny"] = round(mini / tiny, 1)
    vit = build_image_encoder("vit-b16-crossmae", random_init=True)
    frames = torch.randint(0, 256, (16, FRAME_SIDE, FRAME_SIDE, 3), dtype=torch.uint8)
    vit.encode(frames[:2])
    t0 = time.perf_counter()
    vit.encode(frames)
    out["vit_b_frames_per_s"] = round(len(frames) / (time.perf_counter() - t0), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement (median reported)")
    parser.add_argument("--batch", type=int, default=8, help="arm4r-tiny batch size")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "tiny": bench_tiny(args.batch, args.steps),
        "base": bench_base(max(2, args.steps // 2)),
        "trunks": bench_trunks(32, max(2, args.steps // 2)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
