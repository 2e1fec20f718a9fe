import subprocess
import sys

import pytest
import tyro

from robo4d.extract.commands import COMMANDS, Tracks, _parse_shard
from robo4d.extract.errors import ExtractError


def test_commands_parse_with_tyro():
    args = tyro.extras.subcommand_cli_from_dict(
        COMMANDS, args=["tracks", "--dataset", "d", "--camera", "ego", "--shard", "1/4", "--fb-threshold", "0.5"]
    )
    assert isinstance(args, Tracks) and args.shard == "1/4" and args.fb_threshold == 0.5 and args.grid == 36


def test_shard_parsing():
    assert _parse_shard("3/8") == (3, 8)
    for bad in ("8/8", "x", "1/0", "-1/2"):
        with pytest.raises(ExtractError, match="--shard"):
            _parse_shard(bad)


def test_learned_only_options_refuse_lk(tmp_path):
    for extra in ({"tracker_refine": True}, {"tracker_weights": tmp_path}):
        with pytest.raises(ExtractError, match="need --tracker learned, got --tracker lk"):
            Tracks(dataset=tmp_path / "missing", camera="ego", **extra).run()


def test_commands_module_is_import_light():
    code = "import sys, robo4d.extract.commands; print(sorted({'cv2', 'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
