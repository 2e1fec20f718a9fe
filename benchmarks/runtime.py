"""ARM4R closed-loop step latency: robo4d's windowed KV-cache decoding vs re-encoding the whole history.

For each preset and episode step t, times one trunk step of `StepwiseDecoder` (bounded context of seq_len
steps) and one "naive" step that re-encodes all t steps so far, the way an unbounded context grows. Only the
trunk and readout are timed: the frozen encoders and input MLPs cost the same per step in both.
Prints JSON: per preset and step, median milliseconds of each and their ratio (naive / robo4d).

GR-1 rows (`measure_gr1`): robo4d's step-wise runner against the release's evaluation, which re-runs its
resampler and the full 10-step window at every step.

    .venv/bin/python benchmarks/runtime.py [--presets arm4r-tiny arm4r-base] [--gr1-presets gr1-tiny] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from robo4d.methods.arm4r import preset
from robo4d.methods.arm4r.inference import StepwiseDecoder, full_sequence_readout
from robo4d.methods.arm4r.model import ARM4RModel
from robo4d.methods.gr1 import preset as gr1_preset
from robo4d.methods.gr1.inference import StepwiseRunner
from robo4d.methods.gr1.model import GR1Model

STEPS = (1, 50, 200, 500)


def _ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


@torch.no_grad()
def measure(name: str, steps: tuple[int, ...], repeats: int) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    cfg = preset(name, stage=3)
    model = ARM4RModel(cfg).eval()
    tokens = torch.randn(1, max(steps) + repeats, 3, cfg.dim)  # (1, steps, [language, state, action], D)
    decoder = StepwiseDecoder(model, cfg.seq_len)
    for t in range(cfg.seq_len + 2):  # warm-up: first calls pay one-off allocation costs
        decoder.step(tokens[:, t, 0], tokens[:, t, 1], tokens[:, t - 1, 2] if t else None)
    full_sequence_readout(model, tokens[:, :2])
    decoder.reset()
    windowed: dict[int, list[float]] = {s: [] for s in steps}
    for t in range(max(steps) + repeats - 1):
        step = lambda t=t: decoder.step(tokens[:, t, 0], tokens[:, t, 1], tokens[:, t - 1, 2] if t else None)  # noqa: E731
        elapsed = _ms(step)
        for s in steps:  # step s (1-based) and the repeats after it
            if s - 1 <= t < s - 1 + repeats:
                windowed[s].append(elapsed)
    out = {}
    for s in steps:
        naive = [_ms(lambda s=s: full_sequence_readout(model, tokens[:, :s])) for _ in range(repeats)]
        robo4d_ms, naive_ms = statistics.median(windowed[s]), statistics.median(naive)
        out[str(s)] = {"robo4d_ms": round(robo4d_ms, 3), "naive_ms": round(naive_ms, 3)}
        out[str(s)]["ratio"] = round(naive_ms / robo4d_ms, 2)
    return out


@torch.no_grad()
def measure_gr1(name: str, steps: tuple[int, ...], repeats: int) -> dict[str, dict[str, float]]:
    """GR-1 per control step from frozen-encoder tokens (the encoder itself excluded, as for ARM4R): robo4d
    resamples the new frames only and runs the trunk over a cached / bounded 10-step history; "naive" is the
    release's evaluation, which re-resamples all 10 frames per camera and runs the full padded window."""
    torch.manual_seed(0)
    cfg = gr1_preset(name)
    model = GR1Model(cfg).eval()
    lang = model.lang_token(torch.randn(1, cfg.text_dim))  # (1, D): one instruction per episode, embedded once
    state = model.state_token(torch.randn(1, 6), torch.tensor([[1.0, 0.0]]))  # (1, D)
    frames = [torch.randn(1, cfg.seq_len, cfg.image_tokens, cfg.image_dim) for _ in cfg.cameras]  # (1, T, L, C)

    def robo4d_step(runner: StepwiseRunner) -> None:
        new = [model.frame_tokens(i, f[:, -1:]) for i, f in enumerate(frames)]  # the new frame of each camera
        model.action_head(runner.step(model.step_inputs(lang, new, state[:, None])[:, 0]))

    def naive_step() -> None:
        window = [model.frame_tokens(i, f) for i, f in enumerate(frames)]  # (1, T, K+1, D) each
        hidden = model(model.step_inputs(lang, window, state[:, None].expand(-1, cfg.seq_len, -1)), obs=False)
        model.predict_actions(hidden[:, -1:])

    runner = StepwiseRunner(model, cfg.seq_len)
    for _ in range(cfg.seq_len + 2):  # warm-up: first calls pay one-off allocation costs
        robo4d_step(runner)
    naive_step()
    runner.reset()
    windowed: dict[int, list[float]] = {s: [] for s in steps}
    for t in range(max(steps) + repeats - 1):
        elapsed = _ms(lambda: robo4d_step(runner))
        for s in steps:
            if s - 1 <= t < s - 1 + repeats:
                windowed[s].append(elapsed)
    naive_ms = statistics.median(_ms(naive_step) for _ in range(repeats))  # a fixed padded window: any step
    out = {}
    for s in steps:
        robo4d_ms = statistics.median(windowed[s])
        out[str(s)] = {"robo4d_ms": round(robo4d_ms, 3), "naive_ms": round(naive_ms, 3)}
        out[str(s)]["ratio"] = round(naive_ms / robo4d_ms, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["arm4r-tiny", "arm4r-base"])
    parser.add_argument("--gr1-presets", nargs="+", default=["gr1-tiny", "gr1-release"])
    parser.add_argument("--steps", nargs="+", type=int, default=list(STEPS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"device": "cpu", "threads": args.threads, "dtype": "float32", "unit": "ms per control step"}
    for name in args.presets:
        cfg = preset(name, stage=3)
        report[name] = {"seq_len": cfg.seq_len, "steps": measure(name, tuple(args.steps), args.repeats)}
    for name in args.gr1_presets:
        steps = measure_gr1(name, tuple(args.steps), args.repeats)
        report[name] = {"seq_len": gr1_preset(name).seq_len, "steps": steps}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
