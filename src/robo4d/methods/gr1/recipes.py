"""GR-1's training recipes: the two-stage schedule and the ablations of the paper's Table 3.

    gr1-2stage            pretrain (human video: language + ego frames, future-frame loss) -> finetune (robot
                          front + wrist frames, state, actions; action + video losses)
    gr1-scratch           finetune only, from random weights (no pre-training; the method's baseline)
    gr1-no-video          pretrain -> finetune without the video loss
    gr1-scratch-no-video  finetune only, without the video loss (paper: 3.33 vs 4.21 avg. len on CALVIN ABCD->D)

Pretrain -> finetune keeps the trunk, resampler, language and timestep embeddings, embedding LayerNorm and
camera slot 0 (ego -> front: its projections and OBS queries) plus the frame decoder; it initialises the wrist
slot, the state embeddings, the ACT query and the action head, which pre-training does not have (as the
release: Ego4D pre-training trains the static-camera path only).

Schedules follow the paper's shapes (pretrain lr 3.6e-4 with 10% warmup; finetune lr 1e-3 with 5% warmup;
AdamW, cosine) at step counts sized for the tiny preset on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

from robo4d.methods.gr1.config import preset
from robo4d.methods.gr1.policy import ACTION_MODULES, SHARED_MODULES, SLOT_MODULES
from robo4d.train.optim import OptimConfig
from robo4d.train.recipes import Recipe, RecipeInputs, register_recipe
from robo4d.train.stage import StageConfig
from robo4d.train.weight_map import DROP, INIT, LOAD, WeightMap, WeightRule

METHOD = "gr1"
DEFAULT_PRESET = "gr1-tiny"
PRETRAIN_STEPS = 1500
FINETUNE_STEPS = 1500
_COMMON = {"method": METHOD, "batch_size": 16, "eval_every": 250, "save_every": 500, "log_every": 10}


def transfer_map(video_loss: bool) -> WeightMap:
    """Pretrain -> finetune weight map (finetune with or without the video loss)."""
    load = [*SHARED_MODULES, *(f"{m}.0" for m in SLOT_MODULES[: 2 + video_loss])]
    init = [f"{m}.1" for m in SLOT_MODULES[: 2 + video_loss]]
    init += [m for m in ACTION_MODULES if not m.startswith("model.action_")]
    rules = [WeightRule(pattern=f"{p}.*", action=LOAD) for p in load]
    rules += [WeightRule(pattern=f"{p}.*", action=INIT) for p in init]
    if video_loss:
        rules += [WeightRule(pattern="model.decoder.*", action=LOAD)]
        rules += [WeightRule(pattern="model.action_*", action=INIT)]
    else:  # the pre-trained frame decoder and OBS queries stay behind
        rules += [WeightRule(pattern="model.action_*", action=INIT)]
        rules += [WeightRule(pattern=p, action=DROP) for p in ("model.decoder.*", "model.obs_*")]
    return WeightMap(rules=tuple(rules))


def pretrain_stage(preset_name: str, human: tuple[str, ...], **overrides: object) -> StageConfig:
    kw = {
        "steps": PRETRAIN_STEPS,
        "optim": OptimConfig(lr=3.6e-4, warmup_fraction=0.1, betas=(0.9, 0.999)),  # paper: 5 of 50 epochs
        **_COMMON,
        **overrides,
    }
    return StageConfig(name="pretrain", policy=preset(preset_name, "pretrain"), datasets=human, **kw)  # type: ignore[arg-type]


def finetune_stage(
    preset_name: str, robot: tuple[str, ...], *, video_loss: bool, pretrained: bool, **overrides: object
) -> StageConfig:
    kw = {
        "steps": FINETUNE_STEPS,
        "optim": OptimConfig(lr=1e-3, warmup_fraction=0.05, betas=(0.9, 0.999)),  # paper: 1 of 20 epochs
        **_COMMON,
        **overrides,
    }
    if pretrained:
        kw |= {"init_from": "pretrain", "weight_map": transfer_map(video_loss)}
    policy = preset(preset_name, "finetune", video_loss=video_loss)
    return StageConfig(name="finetune", policy=policy, datasets=robot, **kw)  # type: ignore[arg-type]


def gr1_stages(
    preset_name: str,
    *,
    human: tuple[str, ...],
    robot: tuple[str, ...],
    pretrained: bool = True,
    video_loss: bool = True,
    pretrain: dict[str, object] | None = None,
    finetune: dict[str, object] | None = None,
) -> tuple[StageConfig, ...]:
    """The stages of one recipe; `pretrain` / `finetune` override StageConfig fields (e.g. steps)."""
    if pretrained and not human:
        raise ValueError("GR-1 pre-training needs --human (human-video dataset roots)")
    if not robot:
        raise ValueError("GR-1 fine-tuning needs --robot (robot-demo dataset roots)")
    tune = finetune_stage(preset_name, robot, video_loss=video_loss, pretrained=pretrained, **(finetune or {}))
    if not pretrained:
        return (tune,)
    return pretrain_stage(preset_name, human, **(pretrain or {})), tune


def _build(pretrained: bool, video_loss: bool) -> Callable[[RecipeInputs], tuple[StageConfig, ...]]:
    def build(inputs: RecipeInputs) -> tuple[StageConfig, ...]:
        assert inputs.preset is not None  # Recipe.resolve fills it
        return gr1_stages(
            inputs.preset, human=inputs.human, robot=inputs.robot, pretrained=pretrained, video_loss=video_loss
        )

    return build


RECIPES = {  # name -> (pretrained, video_loss, description)
    "gr1-2stage": (True, True, "GR-1: human-video future-frame pre-training -> robot fine-tuning (actions + frames)"),
    "gr1-scratch": (False, True, "GR-1 fine-tuning (actions + frames) from random weights: no pre-training"),
    "gr1-no-video": (True, False, "GR-1 ablation: pre-training -> fine-tuning on actions only (no video loss)"),
    "gr1-scratch-no-video": (False, False, "GR-1 ablation: fine-tuning on actions only from random weights"),
}

for _name, (_pretrained, _video, _description) in RECIPES.items():
    register_recipe(
        _name,
        Recipe(
            method=METHOD,
            description=_description,
            needs=("human", "robot") if _pretrained else ("robot",),
            default_preset=DEFAULT_PRESET,
            policy_stage="finetune",
            baseline=_name == "gr1-scratch",
            build=_build(_pretrained, _video),
        ),
    )
