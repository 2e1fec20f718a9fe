"""The package skeleton: CLI help, named-lookup errors, config round trips."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from robo4d import cli, types
from robo4d.config import config_from_dict, config_to_dict
from robo4d.methods.base import unknown_name_message


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["--help"])
    out = capsys.readouterr().out
    for name in cli.GROUPS:
        assert name in out


def test_unknown_command_suggests_the_closest() -> None:
    with pytest.raises(SystemExit, match="did you mean 'world'"):
        cli.main(["wrld"])


def test_unknown_name_message_lists_known() -> None:
    msg = unknown_name_message("preset", "arm4r-tny", ["arm4r-tiny", "arm4r-base"])
    assert "did you mean 'arm4r-tiny'" in msg and "arm4r-base" in msg


def test_per_camera_keys_round_trip() -> None:
    for make in (types.image_key, types.depth_key, types.points_key, types.gt_points_visible_key):
        assert types.camera_of(make("front")) == "front"
    with pytest.raises(KeyError):
        types.camera_of("observation.state")


@dataclass(frozen=True, kw_only=True)
class _Inner:
    size: int = 3
    names: tuple[str, ...] = ("a", "b")


@dataclass(frozen=True, kw_only=True)
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    lr: float = 1e-3
    init_from: str | None = None


def test_config_round_trip_and_unknown_field() -> None:
    cfg = _Outer(inner=_Inner(size=5, names=("x",)), init_from="runs/a")
    assert config_from_dict(_Outer, config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match=r"config\.inner: unknown field\(s\) \['sise'\]"):
        config_from_dict(_Outer, {"inner": {"sise": 3}})
