"""The `robo4d` command: parse arguments, then call the library. Nothing else lives here.

Each group's arguments are frozen dataclasses with a `run()` method, defined next to the code they
drive (`<package>/commands.py`) and imported only when that group is used, so `robo4d --help` is fast.

A user's mistake (bad path, missing field, unknown name, wrong shape: the library raises ValueError and its
subclasses such as DatasetError, KeyError or a missing/unwritable file) is one line on stderr,
`robo4d <command>: <message>`, and exit code 2; `--debug` anywhere on the line shows the traceback instead.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import tyro

DEBUG_FLAG = "--debug"
USER_ERROR_EXIT = 2
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


class UserError(SystemExit):
    """How main() stops on a user's mistake: exit code 2 (its message is already on stderr); str() is the message,
    so callers and tests can still see what went wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(USER_ERROR_EXIT)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _stop(message: str) -> UserError:
    print(message, file=sys.stderr)
    return UserError(message)


@dataclass(frozen=True)
class _Group:
    module: str  # module holding COMMANDS (a dict name -> dataclass) or COMMAND (one dataclass)
    description: str


GROUPS: dict[str, _Group] = {
    "world": _Group("robo4d.world.commands", "generate the embedded Meta-World datasets (robot demos, human videos)"),
    "data": _Group("robo4d.data.commands", "inspect LeRobot-format datasets; import your own videos"),
    "extract": _Group("robo4d.extract.commands", "video -> 2D tracks -> depth -> 3D point tracks; visualise them"),
    "model": _Group("robo4d.methods.commands", "inspect model presets (parameter counts per block)"),
    "train": _Group("robo4d.train.commands", "train a policy: one stage or a multi-stage recipe"),
    "plot-metrics": _Group("robo4d.train.plot_commands", "plot a run's loss curves to a PNG"),
    "eval": _Group("robo4d.eval.commands", "closed-loop evaluation of a checkpoint in the embedded world"),
    "serve": _Group("robo4d.serve.commands", "serve a checkpoint over websocket + msgpack (openpi protocol)"),
    "demo": _Group("robo4d.recipes.commands", "the end-to-end ARM4R experiment on the embedded world"),
    "tracker": _Group("robo4d.recipes.tracker_commands", "train and evaluate the learned point tracker"),
    "label": _Group("robo4d.methods.igor.commands", "label datasets with IGOR latent actions; their predictiveness"),
    "imagine": _Group("robo4d.methods.igor.imagine_cli", "IGOR latent-action transfer: one video's motion on another"),
    "bench": _Group(
        "robo4d.recipes.bench_commands", "the pre-training experiment grid: resumable, sharded, with intervals"
    ),
}


def _usage() -> str:
    width = max(len(name) for name in GROUPS)
    lines = ["usage: robo4d COMMAND [ARGS]... [--debug]", "", "commands:"]
    lines += [f"  {name:<{width}}  {group.description}" for name, group in GROUPS.items()]
    lines += ["", "Run `robo4d COMMAND --help` for a command's arguments.",
              "A mistake in the input is one line on stderr (exit code 2); --debug shows the traceback."]  # fmt: skip
    return "\n".join(lines)


def one_line(error: BaseException) -> str:
    """The error's message on one line (a KeyError's message without the quotes str() adds)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text or type(error).__name__


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [a for a in argv if a != DEBUG_FLAG]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    name, rest = argv[0], argv[1:]
    if name not in GROUPS:
        from robo4d.methods.base import unknown_name_message

        raise _stop(f"robo4d: {unknown_name_message('command', name, GROUPS)}")
    module = importlib.import_module(GROUPS[name].module)
    commands = getattr(module, "COMMANDS", {})
    prog = f"robo4d {name}" + (f" {rest[0]}" if rest and rest[0] in commands else "")
    try:
        if hasattr(module, "COMMANDS"):
            args = tyro.extras.subcommand_cli_from_dict(
                module.COMMANDS, prog=f"robo4d {name}", args=rest, description=GROUPS[name].description
            )
        else:
            args = tyro.cli(module.COMMAND, prog=prog, args=rest, description=GROUPS[name].description)
        args.run()
    except USER_ERRORS as e:
        if debug:
            raise
        raise _stop(f"{prog}: {one_line(e)}") from None
    except SystemExit as e:
        # Commands that stop with a message (sys.exit("robo4d train: ...")) report a user error too.
        if debug or not isinstance(e.code, str):
            raise
        message = one_line(ValueError(e.code))
        raise _stop(message if message.startswith("robo4d") else f"{prog}: {message}") from None


if __name__ == "__main__":
    main()
