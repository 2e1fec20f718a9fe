"""Frozen dataclass configs <-> plain JSON dicts (for checkpoints), with clear errors on unknown fields; the
"did you mean" message of every named lookup."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

C = TypeVar("C")


def unknown_name_message(kind: str, name: str, known: Any) -> str:
    """'unknown preset 'arm4r-tny'; did you mean 'arm4r-tiny'? known: ...' — used for every named lookup."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} known: {', '.join(known)}"


def parse_pairs(items: Any, *, flag: str, source: str, syntax: str) -> dict[str, str]:
    """`("image=front", ...)` -> {"image": "front"}: the one parser of `--camera-map`-style SRC=DST options.
    `source` names what the left side is (e.g. "dataset camera"), `syntax` the expected form for the error."""
    mapping: dict[str, str] = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst or "=" in dst:
            raise ValueError(f"{flag} {item!r}: expected {syntax}, e.g. image=front")
        if src in mapping:
            raise ValueError(f"{flag} {item!r}: {source} {src!r} is mapped twice ({mapping[src]!r} and {dst!r})")
        mapping[src] = dst
    return mapping


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass (nested dataclasses and tuples included) as a JSON-ready dict."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    return {f.name: _to_plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, tuple | list):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def config_from_dict(cls: type[C], data: dict[str, Any], *, where: str = "config") -> C:
    """Rebuild `cls` from `config_to_dict` output; unknown or missing fields raise, naming `where`."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown} for {cls.__name__}; expected some of {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _from_plain(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"{where}: cannot build {cls.__name__}: {e}") from e


def _from_plain(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return config_from_dict(arg, value, where=where)
        non_none = [a for a in typing.get_args(hint) if a is not type(None)]
        return _from_plain(non_none[0], value, where) if len(non_none) == 1 else value
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(_from_plain(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict and isinstance(value, dict):
        _, vt = typing.get_args(hint)
        return {k: _from_plain(vt, v, f"{where}.{k}") for k, v in value.items()}
    return value
