"""The command line's error contract: a user's mistake is one stderr line and exit 2; --debug shows the
traceback; a bug keeps its traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from robo4d import cli

BAD_INPUTS = {
    "data info": (["data", "info", "{tmp}/none"], "dataset directory does not exist"),
    "extract tracks": (["extract", "tracks", "--dataset", "{tmp}/none", "--camera", "ego"], "does not exist"),
    "extract shard": (["extract", "tracks", "--dataset", "{tmp}", "--camera", "ego", "--shard", "9/2"], "--shard"),
    "model info": (["model", "info", "--preset", "arm4r-tinny"], "unknown preset 'arm4r-tinny'"),
    "train": (["train", "--recipe", "scratch", "--robot", "{tmp}/none", "--out", "{tmp}/run"], "does not exist"),
    "eval": (["eval", "--checkpoint", "{tmp}/none"], "no such file or directory"),
    "serve": (["serve", "--checkpoint", "{tmp}/none"], "no such file or directory"),
    "import-video": (["data", "import-video", "{tmp}/none.mp4", "--out", "{tmp}/o", "--task", "t"], "none.mp4"),
    "unknown command": (["dta", "info"], "unknown command 'dta'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_stderr_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv, expected = BAD_INPUTS[case]
    with pytest.raises(SystemExit) as stop:
        cli.main([a.format(tmp=tmp_path) for a in argv])
    assert stop.value.code == cli.USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("robo4d") and expected in err, err
    assert "Traceback" not in err


def test_debug_anywhere_shows_the_traceback(tmp_path: Path) -> None:
    from robo4d.data.errors import DatasetError

    with pytest.raises(DatasetError, match="does not exist"):
        cli.main(["data", "--debug", "info", str(tmp_path / "none")])


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from robo4d.data import commands

    def broken(self: object) -> None:
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(commands.Info, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["data", "info", str(tmp_path)])


def test_console_output_has_no_chained_traceback(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "robo4d.cli", "data", "info", str(tmp_path / "none")], capture_output=True, text=True
    )
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == f"robo4d data info: {tmp_path / 'none'}: dataset directory does not exist\n"
    debug = subprocess.run(
        [sys.executable, "-m", "robo4d.cli", "data", "info", str(tmp_path / "none"), "--debug"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "DatasetError" in debug.stderr
