"""IGOR's configuration and its named presets (one config class; the objective picks what a stage trains).

Objectives, in recipe order:
    "lam"         latent action model: IDM -> VQ -> FDM on frame pairs (o_t, o_{t+k}) of any video
    "world"       rectified-flow world model: history frames + latent action -> o_{t+k} (labelled video)
    "foundation"  text + frames -> the next latent action, L2 (labelled video)
    "control"     the frozen foundation policy + a trained low-level head -> tau future eef poses (robot demos)

Cameras. A stage may mix human (`ego`) and robot (`front`) datasets: each dataset contributes the frames of
the first camera in `cameras` it has, with that camera's frame gap k (`frame_gaps`, aligned with
`cameras`), because human video and robot demos move at different speeds per frame. The control objective
reads `cameras[0]` only (it is what eval and serve render).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from robo4d import types
from robo4d.methods.base import unknown_name_message

Objective = Literal["lam", "world", "foundation", "control"]
OBJECTIVES = ("lam", "world", "foundation", "control")


@dataclass(frozen=True, kw_only=True)
class IGORConfig:
    # --- what this stage trains
    objective: Objective = "lam"  # lam | world | foundation | control (see the module docstring)
    cameras: tuple[str, ...] = (types.CAM_FRONT, types.CAM_EGO)  # per dataset: the first of these it has
    frame_gaps: tuple[int, ...] = (3, 3)  # k per camera of `cameras`: the goal frame is o_{t+k} (paper: 3 robot)
    image_size: int = 64  # S: frames are resized to S x S before every model
    patch_size: int = 8  # pixel patch side of the learned patch embeddings (S must divide by it)
    # --- latent action model
    lam_dim: int = 64  # width of the IDM and FDM transformers
    lam_heads: int = 4  # attention heads of the IDM and FDM
    idm_layers: int = 2  # spatio-temporal blocks of the IDM
    fdm_layers: int = 2  # ViT blocks of the FDM
    num_latents: int = 4  # N: readout queries = latent action tokens (paper: 4)
    codebook_size: int = 32  # |C|: codes in the one shared codebook (paper: 32)
    code_dim: int = 128  # D: code width (paper: 128)
    commitment: float = 0.25  # beta: weight of ||z_e - sg(e)||^2 (the codebook term ||sg(z_e) - e||^2 has 1)
    crop_scale: float = 0.875  # random crops keep this share of the side (IDM and FDM draw different crops)
    restart_every: int = 50  # training steps between dead-code checks (0: never restart)
    dead_usage: float = 0.03  # a code is dead when its usage EMA falls below this share of uniform usage
    usage_decay: float = 0.9  # decay of the per-code usage EMA (unused for ~33 steps -> dead)
    # --- foundation policy, low-level policy and world model
    history: int = 2  # frames o_{t-h+1..t} the foundation, low-level head and world model see
    policy_dim: int = 64  # width of the foundation policy's spatio-temporal transformer
    policy_heads: int = 4
    policy_layers: int = 2
    low_level_layers: int = 1  # blocks of the low-level head on top of the frozen foundation
    tau: int = 3  # K: robot actions predicted per latent action (paper: 3)
    action_scale: float = 0.01  # metres per unit of the low-level head's position targets (others: unscaled)
    world_dim: int = 64  # width of the world model's velocity transformer
    world_heads: int = 4
    world_layers: int = 2
    sample_steps: int = 16  # Euler steps of rectified-flow sampling
    # --- frozen text encoder (rebuilt from its name; never part of the checkpoint)
    text_encoder: str = "minilm"  # name in robo4d.nn.encoders.TEXT_ENCODERS
    text_weights: str | None = None  # local weights (None: its packaged default)
    text_dim: int = 384  # E: sentence-embedding width (384 MiniLM, 512 CLIP)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"IGORConfig.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not self.cameras or len(self.frame_gaps) != len(self.cameras):
            raise ValueError(f"IGORConfig.frame_gaps {self.frame_gaps} must give one gap per camera of {self.cameras}")
        if any(k < 1 for k in self.frame_gaps):
            raise ValueError(f"IGORConfig.frame_gaps must be >= 1, got {self.frame_gaps}")
        if self.image_size % self.patch_size:
            raise ValueError(f"IGORConfig.image_size {self.image_size} must divide by patch_size {self.patch_size}")
        for name in ("lam_dim", "policy_dim", "world_dim"):
            heads = getattr(self, name.replace("_dim", "_heads"))
            if getattr(self, name) % heads:
                raise ValueError(f"IGORConfig.{name} {getattr(self, name)} must split into {heads} heads")
        positive = ("idm_layers", "fdm_layers", "num_latents", "codebook_size", "code_dim", "history",
                    "policy_layers", "low_level_layers", "tau", "world_layers", "sample_steps", "text_dim")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"IGORConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.crop_scale <= 1:
            raise ValueError(f"IGORConfig.crop_scale must be in (0, 1], got {self.crop_scale}")
        if not 0 < self.usage_decay < 1 or self.dead_usage < 0 or self.restart_every < 0:
            raise ValueError("IGORConfig: need 0 < usage_decay < 1, dead_usage >= 0 and restart_every >= 0")
        if not self.action_scale > 0:
            raise ValueError(f"IGORConfig.action_scale must be > 0, got {self.action_scale}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def latent_dim(self) -> int:
        """Width of one flattened latent action (N * D)."""
        return self.num_latents * self.code_dim

    def frame_gap(self, camera: str) -> int:
        return self.frame_gaps[self.cameras.index(camera)]


# `igor-tiny` trains on two CPU cores in minutes at 64 px. `igor-base` takes the paper's published sizes:
# N = 4 tokens, |C| = 32, D = 128, tau = 3 and the foundation policy's 12 layers, 12 heads, d 768, patch 14
# at 224 px; the paper does not give the IDM/FDM or world-model depths, so they follow the policy's.
_BASE = {"image_size": 224, "patch_size": 14, "lam_dim": 768, "lam_heads": 12, "idm_layers": 12, "fdm_layers": 12,
         "policy_dim": 768, "policy_heads": 12, "policy_layers": 12, "low_level_layers": 2, "world_dim": 768,
         "world_heads": 12, "world_layers": 12, "history": 4}  # fmt: skip
PRESETS: dict[str, IGORConfig] = {
    "igor-tiny": IGORConfig(),
    "igor-base": IGORConfig(**_BASE),
}


def for_objective(config: IGORConfig, objective: Objective) -> IGORConfig:
    """`config` set up for one objective; control reads the robot camera alone (what eval renders)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    config = replace(config, objective=objective)
    if objective == "control":
        return replace(config, cameras=config.cameras[:1], frame_gaps=config.frame_gaps[:1])
    return config


def preset(name: str, objective: Objective = "lam") -> IGORConfig:
    """The named preset for one objective."""
    if name not in PRESETS:
        raise KeyError(unknown_name_message("preset", name, PRESETS))
    return for_objective(PRESETS[name], objective)
