"""The one policy interface every method implements, and the registry the trainer and CLI build from.

A method (ARM4R, GR-1, IGOR) is a `Policy` subclass plus a frozen config dataclass. Pre-training
objectives (point motion, future frames, latent actions) are just different `compute_loss` bodies
selected by the config's stage; the trainer only ever calls the three methods below.
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robo4d.types import ActionChunk, Observation, PolicyIO


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """What a policy needs from a dataset for one stage; the trainer turns it into a window loader."""

    keys: tuple[str, ...]  # dataset feature keys read per frame
    seq_len: int  # T: frames per training window
    horizon: int  # K: future frames needed after each window step for targets
    # Human-readable hint per key: which command produces it when a dataset lacks it.
    produced_by: dict[str, str]


class Policy(nn.Module, abc.ABC):
    """Every robo4d method. Model code stays single-device; precision and parallelism come from outside."""

    @abc.abstractmethod
    def data_spec(self) -> DataSpec:
        """The features, window length and horizon this policy's current stage trains on."""

    @abc.abstractmethod
    def io(self) -> PolicyIO:
        """What this policy (in its current stage) consumes and produces; eval, serve and train read only this."""

    @abc.abstractmethod
    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar training loss for a collated batch of windows, plus float metrics to log."""

    @abc.abstractmethod
    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        """Closed-loop inference for one control step (keeps its own context between calls)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the episode context (call at the start of every episode)."""

    def set_normalization(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """Receive the training dataset's per-feature stats (LeRobot stats.json layout) before a stage
        starts from scratch. Methods that normalise store them as buffers so checkpoints carry them.
        Default: the method does not normalise."""

    def frame_sources(self, dataset: Any) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Extra per-frame arrays the windows need, looked up by global frame `index` (e.g. cached frozen
        image tokens, so training never re-runs a frozen encoder). Default: none."""
        return {}


@dataclass(frozen=True)
class MethodEntry:
    policy_cls: type[Policy]  # built as policy_cls(config)
    config_cls: type  # frozen dataclass; round-trips through robo4d.config.config_{to,from}_dict


_REGISTRY: dict[str, MethodEntry] = {}


def register_method(name: str, config_cls: type) -> Callable[[type[Policy]], type[Policy]]:
    """Class decorator: `@register_method("arm4r", ARM4RConfig)` on the Policy subclass."""

    def wrap(policy_cls: type[Policy]) -> type[Policy]:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} registered twice")
        _REGISTRY[name] = MethodEntry(policy_cls, config_cls)
        return policy_cls

    return wrap


def method_entry(name: str) -> MethodEntry:
    """The registered policy and config classes of a method; importing robo4d.methods registers all."""
    import robo4d.methods  # noqa: F401  (registers the built-in methods)

    if name not in _REGISTRY:
        raise KeyError(unknown_name_message("method", name, _REGISTRY))
    return _REGISTRY[name]


def build_policy(method: str, config: Any) -> Policy:
    """Build a registered method's policy from its config."""
    return method_entry(method).policy_cls(config)


def unknown_name_message(kind: str, name: str, known: Any) -> str:
    """'unknown preset 'arm4r-tny'; did you mean 'arm4r-tiny'? known: ...' — used for every named lookup."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} known: {', '.join(known)}"
