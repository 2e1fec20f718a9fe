"""The `robo4d` command: parse arguments, then call the library. Nothing else lives here.

Each group's arguments are frozen dataclasses with a `run()` method, defined next to the code they
drive (`<package>/commands.py`) and imported only when that group is used, so `robo4d --help` is fast.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import tyro


@dataclass(frozen=True)
class _Group:
    module: str  # module holding COMMANDS (a dict name -> dataclass) or COMMAND (one dataclass)
    description: str


GROUPS: dict[str, _Group] = {
    "world": _Group("robo4d.world.commands", "generate the embedded Meta-World datasets (robot demos, human videos)"),
    "data": _Group("robo4d.data.commands", "inspect LeRobot-format datasets"),
    "extract": _Group("robo4d.extract.commands", "video -> 2D tracks -> depth -> 3D point tracks; visualise them"),
    "model": _Group("robo4d.methods.commands", "inspect model presets (parameter counts per block)"),
    "train": _Group("robo4d.train.commands", "train a policy: one stage or a multi-stage recipe"),
    "plot-metrics": _Group("robo4d.train.plot_commands", "plot a run's loss curves to a PNG"),
    "eval": _Group("robo4d.eval.commands", "closed-loop evaluation of a checkpoint in the embedded world"),
    "serve": _Group("robo4d.serve.commands", "serve a checkpoint over websocket + msgpack (openpi protocol)"),
    "demo": _Group("robo4d.recipes.commands", "the end-to-end ARM4R experiment on the embedded world"),
    "label": _Group("robo4d.methods.igor.commands", "label datasets with IGOR latent actions; their predictiveness"),
    "imagine": _Group("robo4d.methods.igor.imagine_cli", "IGOR latent-action transfer: one video's motion on another"),
}


def _usage() -> str:
    width = max(len(name) for name in GROUPS)
    lines = ["usage: robo4d COMMAND [ARGS]...", "", "commands:"]
    lines += [f"  {name:<{width}}  {group.description}" for name, group in GROUPS.items()]
    lines += ["", "Run `robo4d COMMAND --help` for a command's arguments."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    name, rest = argv[0], argv[1:]
    if name not in GROUPS:
        from robo4d.methods.base import unknown_name_message

        sys.exit(f"robo4d: {unknown_name_message('command', name, GROUPS)}")
    module = importlib.import_module(GROUPS[name].module)
    prog = f"robo4d {name}"
    if hasattr(module, "COMMANDS"):
        args = tyro.extras.subcommand_cli_from_dict(
            module.COMMANDS, prog=prog, args=rest, description=GROUPS[name].description
        )
    else:
        args = tyro.cli(module.COMMAND, prog=prog, args=rest, description=GROUPS[name].description)
    args.run()


if __name__ == "__main__":
    main()
