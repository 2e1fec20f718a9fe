"""The README's pipeline block, read from the README itself so the two cannot drift apart.

Fast (default): every line parses as a robo4d command, and the block is coherent (each path a command reads
was written by an earlier one; every extraction of the training recipe uses one grid). Slow: every line runs,
at tiny scale, through `tiny_scale` (documented in the README under the block):
    world          --preset default -> --preset tiny
    train          + --steps 2 --batch-size 4 --num-workers 0 --no-progress
    eval           --episodes 1 --seeds 0 --tasks reach-v3 --workers 1
    serve          a free port, in a subprocess, answered one observation, then stopped
and the inputs a user brings are small generated stand-ins: `my_videos/` (two short mp4s) and
`weights/depth-anything-v2-small` (a randomly initialised tiny Depth Anything V2, saved like the real one).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import pytest

from robo4d import cli

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## The pipeline, command by command"


def pipeline_commands() -> list[list[str]]:
    """argv (without the leading `robo4d`) of every line in the README's pipeline block."""
    text = README.read_text()
    block = text[text.index(SECTION) :].split("```")[1]
    commands = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()  # trailing comments are separated by two spaces
        if line:
            argv = shlex.split(line)
            assert argv[0] == "robo4d", f"README pipeline line does not start with robo4d: {line!r}"
            commands.append(argv[1:])
    return commands


def all_readme_commands() -> list[list[str]]:
    """argv (without `robo4d`) of every `robo4d ...` line in any of the README's code blocks."""
    blocks = README.read_text().split("```")[1::2]
    lines = (line.split("  #")[0].strip() for block in blocks for line in block.splitlines())
    return [shlex.split(line)[1:] for line in lines if line.startswith("robo4d ")]


def _option(argv: list[str], name: str) -> list[str]:
    """The values after --name (until the next option)."""
    if name not in argv:
        return []
    values = []
    for arg in argv[argv.index(name) + 1 :]:
        if arg.startswith("--"):
            break
        values.append(arg)
    return values


def parsed(monkeypatch: pytest.MonkeyPatch, commands: list[list[str]] | None = None) -> list[object]:
    """Every README pipeline command (or `commands`) parsed by the CLI into its argument dataclass, none run."""
    import importlib

    seen: list[object] = []
    for group in cli.GROUPS.values():
        module = importlib.import_module(group.module)
        classes = module.COMMANDS.values() if hasattr(module, "COMMANDS") else [module.COMMAND]
        for cls in classes:
            monkeypatch.setattr(cls, "run", lambda self: seen.append(self))
    for argv in pipeline_commands() if commands is None else commands:
        cli.main(argv)
    return seen


def test_every_robo4d_command_in_the_readme_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines outside the pipeline block (other methods, bench, your own data) name real commands and options."""
    commands = all_readme_commands()
    assert len(commands) > len(pipeline_commands())
    assert len(parsed(monkeypatch, commands)) == len(commands)


def test_every_readme_pipeline_line_parses_and_the_block_is_coherent(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = pipeline_commands()
    args = parsed(monkeypatch)
    assert len(args) == len(commands) >= 10 and all(is_dataclass(a) for a in args)
    written: set[str] = set()
    for argv, arg in zip(commands, args, strict=True):
        values = {f.name: getattr(arg, f.name) for f in fields(arg)}
        for name in ("dataset", "human", "robot", "checkpoint"):
            value = values.get(name)
            for path in value if isinstance(value, tuple) else [value] if value is not None else []:
                assert any(str(path).startswith(w) for w in written), f"{argv}: {path} is read before it is written"
        if values.get("out") is not None:
            written.add(str(values["out"]))
    trained = {
        path for argv in commands if argv[0] == "train" for o in ("--human", "--robot") for path in _option(argv, o)
    }
    extractions = [a for a in commands if a[:2] == ["extract", "tracks"] and _option(a, "--dataset")[0] in trained]
    assert extractions, "the README extracts tracks of no dataset it trains on"
    grids = {(_option(argv, "--grid") or ["default"])[0] for argv in extractions}
    assert len(grids) == 1, f"extractions of one recipe must share a grid (one point count per model), got {grids}"
    from robo4d.train.recipes import recipe

    for argv in commands:
        if argv[0] == "train":
            recipe(_option(argv, "--recipe")[0])  # every recipe the README names is registered


TRAIN_TINY = ["--steps", "2", "--batch-size", "4", "--num-workers", "0", "--no-progress"]
EVAL_TINY = {"--episodes": ["1"], "--seeds": ["0"], "--tasks": ["reach-v3"], "--workers": ["1"]}


def _replace_options(argv: list[str], options: dict[str, list[str]]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if arg.startswith("--"):
            skip = arg in options
        if not skip:
            out.append(arg)
    return out + [x for name, values in options.items() for x in (name, *values)]


def tiny_scale(argv: list[str], *, port: int) -> list[str]:
    """A README command at the scale the test runs it (the substitutions listed in the module docstring)."""
    if argv[0] == "world":
        return _replace_options(argv, {"--preset": ["tiny"]})
    if argv[0] == "train":
        return argv + TRAIN_TINY
    if argv[0] == "eval":
        return _replace_options(argv, EVAL_TINY)
    if argv[0] == "serve":
        return _replace_options(argv, {"--port": [str(port)]})
    return argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_once(argv: list[str], port: int, cwd: Path) -> None:
    """Start the README's serve line, answer one observation through the torch-free client, stop it."""
    from robo4d.serve.client import PolicyClient
    from robo4d.types import Observation

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen([sys.executable, "-m", "robo4d.cli", *argv], cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client = PolicyClient(f"ws://127.0.0.1:{port}")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "robo4d serve did not come up"
                time.sleep(0.5)
        with client:
            obs = Observation(
                images={cam: np.zeros((128, 128, 3), np.uint8) for cam in ("front", "wrist")},
                state=np.array([0, 0.6, 0.2, 1, 0, 0, 0, 1], np.float32),
                task="reach the goal",
            )
            chunk = client.predict_action_chunk(obs)
        assert chunk.actions.shape[0] >= 1 and np.isfinite(chunk.actions).all()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _user_inputs(root: Path) -> None:
    """Stand-ins for what a user brings: their videos and the depth model's weights."""
    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from video_fixtures import moving_texture, save_tiny_depth_model, write_mp4

    for i in range(2):
        write_mp4(root / "my_videos" / f"clip_{i}.mp4", moving_texture(24, 64, 64, seed=i), rate=10)
    save_tiny_depth_model(root / "weights" / "depth-anything-v2-small")


@pytest.mark.slow
def test_readme_pipeline_runs_as_written_at_tiny_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Minutes: every README pipeline line, in order, in an empty directory (run with `pytest -m slow`)."""
    _user_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBO4D_CACHE_DIR", str(tmp_path / "cache"))
    port = _free_port()
    for argv in pipeline_commands():
        argv = tiny_scale(argv, port=port)
        if argv[0] == "serve":
            _serve_once(argv, port, tmp_path)
        else:
            cli.main(argv)
    assert (tmp_path / "runs" / "arm4r" / "stage3" / "last").is_file()
    assert (tmp_path / "eval" / "arm4r" / "eval_info.json").is_file()
