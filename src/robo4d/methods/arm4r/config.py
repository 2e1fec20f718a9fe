"""ARM4R's configuration and its named presets (one config class; the stage picks the objective and cameras).

Stages and cameras. The model always has one attention pool per *camera slot* (release: 2 slots of d/2).
Stage 1 (human video) and stage 2 (robot video) have a single camera (`ego` / `front`); like the release
(whose point pre-training config lists the ego image twice) that one camera fills both slots, each slot
with its own pool. Stage 3 feeds `front` to slot 0 and `wrist` to slot 1, so every pool keeps its trained
weights across the stage change and the 2 -> 3 weight map is a plain "keep all but the proprio encoder,
action encoder and action decoder" (the only modules whose shapes depend on the objective).

Fitted to the data (`ARM4RPolicy.fit_config`, run by the trainer on the stage's first dataset): the number of
points is the dataset's (the grid it was extracted with), not the preset's; a control stage reads the
end-effector pose when the dataset's state is the embedded world's layout and the dataset's own joint space
otherwise (robo4d's extension, see policy.py); a control dataset with one camera fills both slots with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from robo4d import types
from robo4d.methods.arm4r.geometry import POSE_DIM, Rot6D
from robo4d.methods.base import unknown_name_message
from robo4d.nn.transformer import TransformerConfig

Objective = Literal["points", "control"]
ControlSpace = Literal["auto", "eef_pose", "joint"]
CONTROL_SPACES = ("auto", "eef_pose", "joint")
Stage = Literal[1, 2, 3]
POINTS_PREFIXES = (types.GT_POINTS_PREFIX, types.POINTS_PREFIX)


@dataclass(frozen=True, kw_only=True)
class ARM4RConfig:
    # --- what is predicted
    objective: Objective = "points"  # "points": next-step 3D point motion (stages 1-2); "control": eef poses (3)
    cameras: tuple[str, ...] = (types.CAM_EGO, types.CAM_EGO)  # source camera of each pool slot (repeats allowed)
    points_prefix: str = types.GT_POINTS_PREFIX  # points objective: ground-truth or extracted tracks' key prefix
    num_points: int = 256  # N: tracked points per frame (points objective: P = A = 3N); fitted from the dataset
    # Control objective: "eef_pose" (SE(3) targets relative to the current pose, the release), "joint" (the
    # dataset's absolute action vectors, normalised with its stats; robo4d's extension) or "auto" (fit_config
    # picks from the dataset's state names; an unfitted "auto" builds as "eef_pose").
    control_space: ControlSpace = "auto"
    joint_state_dim: int = 0  # P of a joint-space control stage: the dataset's observation.state width
    joint_action_dim: int = 0  # A of a joint-space control stage: the dataset's action width
    horizon: int = 1  # K: future steps predicted per step (points: 1, as the release; control: 16)
    seq_len: int = 8  # T: steps per training window and inference context (3 tokens per step)
    rot6d: Rot6D = "rows"  # 6-D rotation layout: "rows" is the release's (its control checkpoints need it)
    # --- frozen encoders (rebuilt from these names; never part of the checkpoint's weights)
    image_encoder: str = "efficientnet-lite0-320"  # name in robo4d.nn.encoders.IMAGE_ENCODERS
    image_size: int | None = None  # frames resized to this side (None: the encoder's default)
    image_weights: str | None = None  # local weight file of the image encoder (None: its packaged default)
    image_tokens: int = 16  # L: tokens per image the encoder yields at image_size (checked when it is built)
    image_dim: int = 320  # C: channels per image token (checked when the encoder is built)
    text_encoder: str = "minilm"  # name in robo4d.nn.encoders.TEXT_ENCODERS
    text_weights: str | None = None  # local weights of the text encoder (None: its packaged default)
    text_dim: int = 384  # E: sentence-embedding width (384 MiniLM, 512 CLIP)
    # --- trainable sizes
    dim: int = 128  # D: trunk width; pool slots each produce D / len(cameras)
    n_layers: int = 4  # trunk blocks
    n_heads: int = 4  # trunk attention heads
    pool_dim: int = 128  # attention-pool width (release: the image encoder's width, 768)
    pool_heads: int = 8  # attention-pool heads
    pool_mlp_ratio: float = 4.0  # attention-pool MLP hidden = ratio x (D / slots)
    text_hidden: int = 512  # hidden width of the language MLP E -> text_hidden -> D
    decoder_hidden: int = 128  # hidden width of the readout MLP D -> decoder_hidden -> A*K
    # --- training-time augmentation (the release's; off in the presets, on in the `-aug` recipes)
    image_augment: int = 0  # pool of augmented copies of each frame, one drawn per window (nn.augment); 0: none
    proprio_noise: float = 0.0  # std of Gaussian noise added to the proprio input (release: 0.005, robot stages)

    def __post_init__(self) -> None:
        if self.objective not in ("points", "control"):
            raise ValueError(f"ARM4RConfig.objective must be 'points' or 'control', got {self.objective!r}")
        if not self.cameras:
            raise ValueError("ARM4RConfig.cameras must name at least one camera")
        if self.dim % len(self.cameras):
            raise ValueError(f"ARM4RConfig.dim {self.dim} must split evenly over {len(self.cameras)} camera slots")
        if self.points_prefix not in POINTS_PREFIXES:
            raise ValueError(f"ARM4RConfig.points_prefix must be one of {POINTS_PREFIXES}, got {self.points_prefix!r}")
        if self.objective == "points" and self.horizon != 1:
            raise ValueError("ARM4RConfig.horizon must be 1 for the points objective (next-step motion)")
        if self.control_space not in CONTROL_SPACES:
            raise ValueError(f"ARM4RConfig.control_space must be one of {CONTROL_SPACES}, got {self.control_space!r}")
        if self.joint and min(self.joint_state_dim, self.joint_action_dim) <= 0:
            raise ValueError(
                "ARM4RConfig: a joint-space control stage needs joint_state_dim and joint_action_dim > 0, got "
                f"{self.joint_state_dim} and {self.joint_action_dim} (fit_config takes them from the dataset)"
            )
        if self.rot6d not in ("columns", "rows"):
            raise ValueError(f"ARM4RConfig.rot6d must be 'columns' or 'rows', got {self.rot6d!r}")
        for name in ("num_points", "horizon", "seq_len", "image_tokens", "image_dim", "text_dim", "pool_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ARM4RConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("image_augment", "proprio_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"ARM4RConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.pool_dim % self.pool_heads:
            raise ValueError(f"ARM4RConfig.pool_dim {self.pool_dim} must split into {self.pool_heads} heads")
        _ = self.trunk  # building it validates dim / n_layers / n_heads

    @property
    def trunk(self) -> TransformerConfig:
        return TransformerConfig(dim=self.dim, n_layers=self.n_layers, n_heads=self.n_heads)

    @property
    def joint(self) -> bool:
        """A control stage in the dataset's joint space (robo4d's extension)."""
        return self.objective == "control" and self.control_space == "joint"

    @property
    def input_dim(self) -> int:
        """P: width of the per-step proprio input (flattened points, the 10-D pose, or the joint state)."""
        if self.objective == "points":
            return 3 * self.num_points
        return self.joint_state_dim if self.joint else POSE_DIM

    @property
    def action_dim(self) -> int:
        """A: width of one predicted step (point deltas, the 10-D pose delta, or a joint-space action)."""
        if self.objective == "points":
            return 3 * self.num_points
        return self.joint_action_dim if self.joint else POSE_DIM

    @property
    def points_camera(self) -> str:
        return self.cameras[0]


_VIT = {"image_encoder": "vit-b16-crossmae", "image_tokens": 197, "image_dim": 768, "pool_dim": 768}
_CLIP = {"text_encoder": "clip-b32", "text_dim": 512}
_RELEASE = {**_VIT, **_CLIP, "num_points": 1296, "seq_len": 16}

# Trunk sizes of the release's configs; `arm4r-tiny` is robo4d's CPU-sized model on EfficientNet-Lite0 tokens.
PRESETS: dict[str, ARM4RConfig] = {
    "arm4r-tiny": ARM4RConfig(),
    "arm4r-mini": ARM4RConfig(**_RELEASE, dim=192, n_layers=12, n_heads=3),
    "arm4r-small": ARM4RConfig(**_RELEASE, dim=384, n_layers=12, n_heads=6),
    "arm4r-base": ARM4RConfig(**_RELEASE, dim=768, n_layers=12, n_heads=12),
    "arm4r-large": ARM4RConfig(**_RELEASE, dim=1024, n_layers=24, n_heads=16),
}

STAGE_CAMERAS: dict[int, tuple[str, ...]] = {
    1: (types.CAM_EGO, types.CAM_EGO),
    2: (types.CAM_FRONT, types.CAM_FRONT),
    3: (types.CAM_FRONT, types.CAM_WRIST),
}
CONTROL_HORIZON = 16  # K of the control stage (release)


def preset(name: str, stage: Stage = 1) -> ARM4RConfig:
    """The named preset configured for a stage: 1 human-video points, 2 robot-video points, 3 robot control."""
    if name not in PRESETS:
        raise KeyError(unknown_name_message("preset", name, PRESETS))
    if stage not in STAGE_CAMERAS:
        raise ValueError(f"stage must be 1, 2 or 3, got {stage!r}")
    base = PRESETS[name]
    if stage == 3:
        return replace(base, objective="control", cameras=STAGE_CAMERAS[3], horizon=CONTROL_HORIZON)
    return replace(base, objective="points", cameras=STAGE_CAMERAS[stage], horizon=1)
