"""ARM4R and GR-1 closed-loop step latency against the releases' inference schemes (ARM4R: encoder included).

Per preset (stage 3: two cameras, the control head) and episode step t, the latency of one control step:
    encoder_ms      the frozen image encoder on this step's new frames (one per camera; every decoder below
                    caches per-frame tokens, so no step ever re-encodes an old frame) + the input MLPs and
                    attention pools that turn them into the step's tokens (the text embedding is cached)
    release_ms      trunk step of the release's scheme: a KV cache whose context grows without bound (every
                    step appends its tokens; the cost grows with t, beyond the windows it trained on)
    exact_ms        trunk step of robo4d's `StepwiseDecoder`: until the window is full it appends to a KV
                    cache like the release; from then on it RE-ENCODES the kept window of seq_len steps (one
                    pass over 3T - 1 tokens) every step. That is what keeps every output exactly equal to
                    training's forward over the last seq_len steps, at a constant cost
    rolling_ms      trunk step of the optional rolling cache (`exact=False`): evicts the oldest step and
                    appends, never re-encodes; approximate once the window is full
and the totals encoder + trunk. The exact steady state now reads out only the state token (`last_only`);
`window_full_pass_ms` is the same re-encode computing every row, as before (identical outputs).
`rolling_drift` compares the rolling cache's predictions with the exact decoder's (same inputs): max |diff|
over the chunk, relative to the exact prediction's mean |value|. Weights and step tokens are random (timing
does not depend on values; the drift figure is indicative only). Prints JSON; milliseconds are medians.

GR-1 rows (`measure_gr1`, `--gr1-presets`): robo4d's step-wise runner against the release's evaluation, which
re-runs its resampler and the full 10-step window at every step (frozen encoder excluded in both).

    .venv/bin/python benchmarks/runtime.py [--presets arm4r-tiny arm4r-base] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from robo4d.methods.arm4r import preset
from robo4d.methods.arm4r.inference import StepwiseDecoder
from robo4d.methods.arm4r.model import ARM4RModel
from robo4d.methods.gr1 import preset as gr1_preset
from robo4d.methods.gr1.inference import StepwiseRunner
from robo4d.methods.gr1.model import GR1Model
from robo4d.nn.encoders import build_image_encoder

STEPS = (1, 50, 200, 500)
FRAME_SIDE = 128  # the world's rendered camera frames


def _ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay one-off allocation costs
    return statistics.median(_ms(fn) for _ in range(repeats))


@torch.no_grad()
def encoder_ms(name: str, repeats: int) -> float:
    """The frozen encoder on one new frame per camera plus the step's token construction, median ms."""
    cfg = preset(name, stage=3)
    model = ARM4RModel(cfg).eval()
    encoder = build_image_encoder(cfg.image_encoder, image_size=cfg.image_size, random_init=True)
    cams = tuple(dict.fromkeys(cfg.cameras))
    frames = {cam: torch.randint(0, 256, (1, FRAME_SIDE, FRAME_SIDE, 3), dtype=torch.uint8) for cam in cams}
    proprio = torch.randn(1, cfg.input_dim)

    def step() -> None:
        images = {cam: encoder.encode(frame) for cam, frame in frames.items()}  # (1, L, C) each
        model.state_token(images, proprio)
        model.action_encoder(torch.randn(1, cfg.action_dim))

    return _median_ms(step, repeats)


@torch.no_grad()
def measure(name: str, steps: tuple[int, ...], repeats: int) -> dict[str, object]:
    torch.manual_seed(0)
    cfg = preset(name, stage=3)
    model = ARM4RModel(cfg).eval()
    n = max(steps) + repeats
    tokens = torch.randn(1, n, 3, cfg.dim)  # (1, steps, [language, state, action], D)
    decoders = {
        "release_ms": StepwiseDecoder(model, n + 1),  # never full: the context only grows
        "exact_ms": StepwiseDecoder(model, cfg.seq_len),
        "rolling_ms": StepwiseDecoder(model, cfg.seq_len, exact=False),
    }
    for decoder in decoders.values():  # warm-up, then a fresh episode
        for t in range(cfg.seq_len + 2):
            decoder.step(tokens[:, t, 0], tokens[:, t, 1], tokens[:, t - 1, 2] if t else None)
        decoder.reset()
    times: dict[str, dict[int, list[float]]] = {k: {s: [] for s in steps} for k in decoders}
    drift: dict[int, list[float]] = {s: [] for s in steps}
    for t in range(n - 1):
        args = (tokens[:, t, 0], tokens[:, t, 1], tokens[:, t - 1, 2] if t else None)
        out = {}
        for key, decoder in decoders.items():
            start = time.perf_counter()
            out[key] = decoder.step(*args)
            elapsed = 1e3 * (time.perf_counter() - start)
            for s in steps:  # step s (1-based) and the repeats after it
                if s - 1 <= t < s - 1 + repeats:
                    times[key][s].append(elapsed)
        exact = out["exact_ms"]
        for s in steps:
            if s - 1 <= t < s - 1 + repeats:
                drift[s].append(float((out["rolling_ms"] - exact).abs().max() / exact.abs().mean()))
    window = torch.randn(1, 3 * cfg.seq_len - 1, cfg.dim)
    full_pass = _median_ms(lambda: model.trunk(window), repeats)
    result: dict[str, object] = {}
    for s in steps:
        row = {k: round(statistics.median(v[s]), 3) for k, v in times.items()}
        row["rolling_drift"] = round(max(drift[s]), 5)
        result[str(s)] = row
    result["window_full_pass_ms"] = round(full_pass, 3)
    return result


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
    report: dict[str, object] = {"device": "cpu", "threads": args.threads, "dtype": "float32",
                                 "unit": "ms per control step"}  # fmt: skip
    for name in args.presets:
        cfg = preset(name, stage=3)
        enc = encoder_ms(name, args.repeats)
        trunk = measure(name, tuple(args.steps), args.repeats)
        for s in args.steps:
            row = trunk[str(s)]
            row["encoder_ms"] = round(enc, 3)  # type: ignore[index]
            for key in ("release", "exact", "rolling"):
                row[f"{key}_total_ms"] = round(enc + row[f"{key}_ms"], 3)  # type: ignore[index]
        report[name] = {"seq_len": cfg.seq_len, "image_encoder": cfg.image_encoder, "steps": trunk}
    for name in args.gr1_presets:
        steps = measure_gr1(name, tuple(args.steps), args.repeats)
        report[name] = {"seq_len": gr1_preset(name).seq_len, "steps": steps}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
