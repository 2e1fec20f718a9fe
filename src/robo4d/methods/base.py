"""The one policy interface every method implements, and the registries the trainer and CLI build from.

A method (ARM4R, GR-1, IGOR) is a `Policy` subclass plus a frozen config dataclass. Pre-training
objectives (point motion, future frames, latent actions) are just different `compute_loss` bodies
selected by the config's stage; the trainer only ever calls the methods below.

Adding a method touches only its own folder `methods/<m>/` and one import line in `methods/__init__.py`.
Importing the method's package registers three things (no other module names the method):

1. The policy:  `@register_method("m", MConfig)` on the `Policy` subclass (`method_entry("m")`).
2. Its presets: `register_presets("m", PRESETS, variants=("pretrain", "control"), parameter_counts=fn)` where
   `PRESETS` maps preset names (unique across methods) to config objects and `fn(preset, variant)` returns
   `{block: parameter count}` for `robo4d model info --preset NAME [--variant V]` (`preset_family(name)`).
3. Its recipes, from `methods/<m>/recipes.py`: `robo4d.train.recipes.register_recipe(name, Recipe(method="m",
   default_preset=..., policy_stage=..., baseline=..., needs=..., build=...))`; `recipes_of("m")` lists
   them and `baseline_recipe("m")` picks the no-pre-training baseline.

What a policy reads is fitted to the data before it is built: `Policy.fit_config(config, features)` (a
classmethod) returns the config with every dataset-dependent size filled in (number of points, state and
action widths) from the stage's first dataset, after `--camera-map` renamed its cameras; the trainer then
checks every dataset against `data_spec()` (keys and `shapes`) before any frozen feature is encoded.

Checkpoints save every parameter and buffer except fully frozen submodules that `frozen_weight_sources()`
names: those are rebuilt from the recorded source (an encoder name and weight file) and never saved.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from robo4d.config import unknown_name_message  # noqa: F401  (re-exported: methods' named lookups use it)
from robo4d.types import ActionChunk, Observation, PolicyIO


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """What a policy needs from a dataset for one stage; the trainer turns it into a window loader."""

    keys: tuple[str, ...]  # dataset feature keys read per frame
    seq_len: int  # T: frames per training window
    horizon: int  # K: future frames needed after each window step for targets
    # Human-readable hint per key: which command produces it when a dataset lacks it.
    produced_by: dict[str, str]
    # Per-frame shape each dataset key must have (keys left out: any shape), checked before any encoding.
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Keys a frame source computes (Policy.frame_sources) -> the dataset key it is computed from, e.g.
    # "frozen.image_tokens.front" -> "observation.images.front"; checked before the source is built.
    derived_from: dict[str, str] = field(default_factory=dict)


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

    @classmethod
    def fit_config(cls, config: Any, features: Mapping[str, Any]) -> Any:
        """`config` with its dataset-dependent sizes taken from `features` (key -> declared feature with a
        `.shape`, cameras already renamed to the policy's names), e.g. the number of tracked points or the
        width of a joint-space action. Raise ValueError naming the feature when the data cannot fit the
        method at all. Default: the config does not depend on the data."""
        return config

    def check_init_from(self, source_config: dict[str, Any]) -> None:
        """Raise ValueError, in one line, when a checkpoint's policy config (config.json "policy_config") cannot
        seed this policy as fitted to the stage's data (e.g. tracks of another number of points). Default:
        nothing; the stage's weight map still refuses any tensor of the wrong shape."""

    def frozen_weight_sources(self) -> dict[str, str]:
        """Fully frozen submodule name -> the named weight source it is rebuilt from at construction (e.g.
        "efficientnet-lite0-320 (packaged weights)"). Checkpoints leave exactly these submodules out and
        record the sources; every other tensor, frozen or not, is saved. Default: none."""
        return {}

    def set_normalization(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """Receive the training dataset's per-feature stats (LeRobot stats.json layout) before a stage
        starts from scratch. Methods that normalise store them as buffers so checkpoints carry them.
        Default: the method does not normalise."""

    def frame_sources(self, dataset: Any) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Extra per-frame arrays the windows need, looked up by global frame `index` (e.g. cached frozen
        image tokens, so training never re-runs a frozen encoder). Declare each key returned here in
        `data_spec().derived_from`: the dataset key it needs is then checked before anything is encoded (an
        undeclared one only once the sources are built).
        Default: none."""
        return {}


@dataclass(frozen=True, kw_only=True)
class PresetFamily:
    """A method's named presets and how `robo4d model info` breaks them down."""

    method: str  # registered method name
    presets: Mapping[str, Any]  # preset name -> the method's config object
    variants: tuple[str, ...]  # model variants parameter_counts can list (a stage's objective); first = default
    # (preset name, variant) -> {block name: parameter count}, in print order (built on the meta device).
    parameter_counts: Callable[[str, str], dict[str, int]]


@dataclass(frozen=True)
class MethodEntry:
    policy_cls: type[Policy]  # built as policy_cls(config)
    config_cls: type  # frozen dataclass; round-trips through robo4d.config.config_{to,from}_dict


_REGISTRY: dict[str, MethodEntry] = {}
_PRESETS: dict[str, PresetFamily] = {}  # preset name -> its family


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


def register_presets(
    method: str,
    presets: Mapping[str, Any],
    *,
    variants: tuple[str, ...],
    parameter_counts: Callable[[str, str], dict[str, int]],
) -> None:
    """Register a method's presets (names unique across methods) for `robo4d model info` and recipe checks."""
    if not variants:
        raise ValueError(f"register_presets({method!r}): name at least one variant")
    clash = sorted(set(presets) & set(_PRESETS))
    if clash:
        raise ValueError(f"preset name(s) {clash} registered twice (by {_PRESETS[clash[0]].method!r})")
    family = PresetFamily(method=method, presets=presets, variants=variants, parameter_counts=parameter_counts)
    _PRESETS.update(dict.fromkeys(presets, family))


def preset_family(name: str) -> PresetFamily:
    """The family (method, counts) of a preset name; unknown names get a "did you mean"."""
    import robo4d.methods  # noqa: F401  (registers the built-in methods)

    if name not in _PRESETS:
        raise KeyError(unknown_name_message("preset", name, _PRESETS))
    return _PRESETS[name]


def method_presets(method: str) -> tuple[str, ...]:
    """Every preset name a method registered, in registration order."""
    import robo4d.methods  # noqa: F401  (registers the built-in methods)

    return tuple(name for name, family in _PRESETS.items() if family.method == method)


def method_packages() -> tuple[str, ...]:
    """The package of every registered method's policy (e.g. "robo4d.methods.arm4r"), where its recipes live."""
    import robo4d.methods  # noqa: F401  (registers the built-in methods)

    packages = (entry.policy_cls.__module__.rpartition(".")[0] for entry in _REGISTRY.values())
    return tuple(dict.fromkeys(p for p in packages if p))


def build_policy(method: str, config: Any) -> Policy:
    """Build a registered method's policy from its config."""
    return method_entry(method).policy_cls(config)
