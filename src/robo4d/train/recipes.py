"""Named multi-stage recipes: the concrete experiments, as Python objects picked by name.

This module holds only the generic machinery. Each method registers its own recipes from its own folder,
in `methods/<m>/recipes.py` beside its policy's module (imported by `all_recipes()`, so importing a method
never imports the trainer):

    register_recipe("m-2stage", Recipe(
        method="m", description="...", needs=("human", "robot"), default_preset="m-tiny",
        policy_stage="finetune", baseline=False, build=build_fn))

`build_fn(inputs: RecipeInputs) -> tuple[StageConfig, ...]` turns the user's datasets and preset into stages
(each naming its `init_from` and weight map). `recipes_of(method)` lists a method's recipes and
`baseline_recipe(method)` names its no-pre-training baseline, so an experiment runner (demo, bench) needs no
method-specific code.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from robo4d import types
from robo4d.methods.base import method_packages, preset_family, unknown_name_message
from robo4d.train.stage import StageConfig

# Stages that read 3D tracks read the extracted ones (robo4d extract) or the embedded world's ground truth.
TRACKS = {"extracted": types.POINTS_PREFIX, "ground-truth": types.GT_POINTS_PREFIX}
ROLES = ("human", "robot")  # RecipeInputs fields holding dataset roots


@dataclass(frozen=True, kw_only=True)
class RecipeInputs:
    """What a recipe is instantiated with: datasets by role, a preset, and how their cameras are named."""

    preset: str | None = None  # model preset name (sizes, encoders); None: the recipe's default_preset
    # Human-video dataset roots: video (+ language, + extracted tracks), no state, no actions. Pre-training
    # stages read them (ARM4R points, GR-1 future frames, IGOR's latent action model with robot video too).
    human: tuple[str, ...] = ()
    robot: tuple[str, ...] = ()  # robot-demo dataset roots: video + state + actions (control stages, robot video)
    tracks: str = "extracted"  # stages reading 3D tracks: "extracted" (robo4d extract) or "ground-truth"
    # Dataset camera -> policy camera, applied to every stage (e.g. {"image": "front"} for a LeRobot dataset).
    camera_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tracks not in TRACKS:
            raise ValueError(unknown_name_message("tracks source", self.tracks, TRACKS))

    @property
    def tracks_prefix(self) -> str:
        """The points key prefix of the chosen tracks (types.POINTS_PREFIX or GT_POINTS_PREFIX)."""
        return TRACKS[self.tracks]


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """A named, ordered list of stages of one method, built from inputs."""

    method: str  # the registered method every stage trains (robo4d.methods.base.method_entry)
    description: str  # one line for listings
    needs: tuple[str, ...]  # RecipeInputs roles that must be non-empty ("human", "robot")
    default_preset: str  # used when RecipeInputs.preset is None
    policy_stage: str  # the stage whose checkpoint is the final control policy (what eval and serve load)
    baseline: bool = False  # the method's no-pre-training baseline (experiment runners compare against it)
    in_demo: bool = True  # `robo4d demo --method` trains it (False: a lever the bench measures, e.g. augmentation)
    build: Callable[[RecipeInputs], tuple[StageConfig, ...]]

    def __post_init__(self) -> None:
        unknown = [n for n in self.needs if n not in ROLES]
        if unknown:
            raise ValueError(f"Recipe.needs: unknown role(s) {unknown}; expected some of {ROLES}")

    def resolve(self, inputs: RecipeInputs, *, name: str) -> RecipeInputs:
        """The inputs with the preset filled in and checked to belong to this recipe's method."""
        if inputs.preset is None:
            return replace(inputs, preset=self.default_preset)
        family = preset_family(inputs.preset)
        if family.method != self.method:
            raise ValueError(
                f"preset {inputs.preset!r} belongs to method {family.method!r}; recipe {name!r} trains "
                f"{self.method!r} (e.g. --preset {self.default_preset})"
            )
        return inputs

    def stages(self, inputs: RecipeInputs, *, name: str) -> tuple[StageConfig, ...]:
        """Every stage, after checking the preset and that the roles this recipe needs were given."""
        inputs = self.resolve(inputs, name=name)
        missing = [f"--{n}" for n in self.needs if not getattr(inputs, n)]
        if missing:
            raise ValueError(f"recipe {name!r} needs {' and '.join(missing)} (dataset roots)")
        return self.instantiate(inputs, name=name)

    def instantiate(self, inputs: RecipeInputs, *, name: str) -> tuple[StageConfig, ...]:
        """Every stage, with the camera map applied (no check of the roles: single-stage runs fill them)."""
        stages = self.build(self.resolve(inputs, name=name))
        wrong = [s.name for s in stages if s.method != self.method]
        if wrong or self.policy_stage not in {s.name for s in stages}:
            raise ValueError(
                f"recipe {name!r}: stages {wrong} do not train {self.method!r}, or its policy_stage "
                f"{self.policy_stage!r} is not among {[s.name for s in stages]}"
            )
        if inputs.camera_map:
            stages = tuple(replace(s, camera_map={**s.camera_map, **inputs.camera_map}) for s in stages)
        return stages


_RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, recipe: Recipe) -> None:
    """Make `recipe` available by name (`robo4d train --recipe NAME`); names are unique across methods."""
    if name in _RECIPES:
        raise ValueError(f"recipe {name!r} registered twice")
    _RECIPES[name] = recipe


def all_recipes() -> dict[str, Recipe]:
    """Every registered recipe by name: imports the `recipes` module beside each registered method's policy."""
    for package in method_packages():
        if importlib.util.find_spec(f"{package}.recipes") is not None:
            importlib.import_module(f"{package}.recipes")
    return dict(_RECIPES)


def recipe(name: str) -> Recipe:
    recipes = all_recipes()
    if name not in recipes:
        raise KeyError(unknown_name_message("recipe", name, recipes))
    return recipes[name]


def recipes_of(method: str) -> dict[str, Recipe]:
    """A method's recipes by name, in registration order."""
    return {n: r for n, r in all_recipes().items() if r.method == method}


def baseline_recipe(method: str) -> str:
    """The name of a method's no-pre-training baseline recipe."""
    names = [n for n, r in recipes_of(method).items() if r.baseline]
    if len(names) != 1:
        raise KeyError(f"method {method!r} registers {len(names)} baseline recipes ({names}); expected exactly one")
    return names[0]


def pick_stage(stages: tuple[StageConfig, ...], name: str, *, recipe_name: str) -> StageConfig:
    by_name = {s.name: s for s in stages}
    if name not in by_name:
        raise KeyError(unknown_name_message(f"stage of recipe {recipe_name!r}", name, by_name))
    return by_name[name]
