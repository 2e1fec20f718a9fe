"""GR-1's configuration and its named presets (one config class; the stage picks inputs, outputs and losses).

Stages. "pretrain" reads language + one camera's frames (human video: `ego`) and predicts the frame
`offset` steps ahead; there is no state, no action query and no action head. "finetune" reads the robot's
`front` and `wrist` frames, the end-effector state and the actions, and trains the action head and (unless
`video_loss=False`, the paper's ablation) the frame decoder on both cameras. Camera slot 0 is the one
pre-training trains (ego -> front), as the release pre-trains its static-camera projections only.

Frames. Two sizes: `image_size`, the frozen encoder's input side (what `PolicyIO.image_size` declares), and
`frame_size`, the side of the predicted future frame, cut into `(frame_size / patch_size)^2` patches of
`patch_size^2 * 3` pixels. The release uses 224 / 224 / 16 (196 patches of 768 values).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from robo4d import types
from robo4d.methods.base import unknown_name_message

Stage = Literal["pretrain", "finetune"]
STAGES = ("pretrain", "finetune")
GlobalToken = Literal["first", "mean"]
ARM_DIM = 6  # xyz (3) + rotation vector (3): the release's 6-D arm layout (it uses Euler angles)
GRIPPER_STATE_DIM = 2  # one-hot (open, closed), as the release
FRAMES_ACTION_KIND = "frames"  # PolicyIO.action_kind of the pre-training stage (not a robot command)

# Target pixels of future frames, a frame source served through the feature cache like encoder tokens.
PATCH_PIXELS_PREFIX = "frozen.patch_pixels."  # + cam -> (N, p*p*3) float32 pixels in [0, 1]


def patch_pixels_key(cam: str) -> str:
    return PATCH_PIXELS_PREFIX + cam


@dataclass(frozen=True, kw_only=True)
class GR1Config:
    # --- stage: what is read and predicted
    stage: Stage = "finetune"  # "pretrain": language + frames, video loss only; "finetune": + state and actions
    cameras: tuple[str, ...] = (types.CAM_FRONT, types.CAM_WRIST)  # camera of each slot (slot 0 = static camera)
    video_loss: bool = True  # predict future frames (finetune: False is the paper's "no video prediction" ablation)
    seq_len: int = 10  # T: steps per training window and of inference history (release: 10)
    offset: int = 3  # the predicted frame lies this many steps ahead (paper: 3 beats 1 and 5)
    chunk: int = 1  # K: actions predicted per step (release: 1)
    # --- frozen encoders (rebuilt from these names; never part of the checkpoint's weights)
    image_encoder: str = "efficientnet-lite0-320"  # name in robo4d.nn.encoders.IMAGE_ENCODERS
    image_weights: str | None = None  # local weight file of the image encoder (None: its packaged default)
    image_size: int = 128  # encoder input side (frames are resized to it)
    image_tokens: int = 16  # tokens the encoder yields at image_size (checked when it is built)
    image_dim: int = 320  # C: channels per image token (checked when the encoder is built)
    global_token: GlobalToken = "mean"  # "first": the encoder's token 0 is a CLS (ViT); "mean": mean of the map
    text_encoder: str = "minilm"  # name in robo4d.nn.encoders.TEXT_ENCODERS
    text_weights: str | None = None  # local weights of the text encoder (None: its packaged default)
    text_dim: int = 384  # E: sentence-embedding width (384 MiniLM, 512 CLIP)
    # --- predicted frames
    frame_size: int = 64  # side of the predicted future frame
    # Decoder patch side: (frame_size / patch_size)^2 patches of patch_size^2 * 3 pixels. 16 as the release:
    # at 64 px the decoder then reads 10 + 16 tokens per frame, a third of the cost of 8 px patches on a CPU.
    patch_size: int = 16
    # --- trainable sizes
    dim: int = 128  # D: trunk width
    n_layers: int = 4  # GPT-2 blocks
    n_heads: int = 4  # trunk attention heads
    dropout: float = 0.1  # embedding, attention and residual dropout (release: 0.1)
    resampler_latents: int = 9  # K: resampled patch tokens per camera (release: 9)
    resampler_depth: int = 2  # Perceiver layers (release: 3)
    resampler_heads: int = 2  # release: 4
    resampler_dim_head: int = 64  # release: 128
    decoder_depth: int = 2  # frame-decoder ViT blocks (release: 2)
    decoder_heads: int = 4  # release: 16
    action_mlp_activation: bool = True  # ReLU inside the action MLP; the release has none (two stacked Linears)
    # --- targets and losses
    arm_scale: tuple[float, float] = (50.0, 20.0)  # arm deltas x (metres, radians) -> units (CALVIN's scaling)
    gripper_threshold: float = 0.5  # opening >= this counts as open (state one-hot and gripper target)
    video_weight: float = 1.0  # weight of the future-frame MSE
    arm_weight: float = 1.0  # weight of the arm Smooth-L1
    gripper_weight: float = 1.0  # weight of the gripper BCE

    def __post_init__(self) -> None:
        def bad(field: str, expected: str) -> ValueError:
            return ValueError(f"GR1Config.{field}: expected {expected}, got {getattr(self, field)!r}")

        if self.stage not in STAGES:
            raise bad("stage", "'pretrain' or 'finetune'")
        if not self.cameras or not all(isinstance(c, str) and c for c in self.cameras):
            raise bad("cameras", "non-empty camera names")
        if len(set(self.cameras)) != len(self.cameras):
            raise bad("cameras", "distinct camera names")
        if self.stage == "pretrain" and (len(self.cameras) != 1 or not self.video_loss):
            raise ValueError("GR1Config: the pretrain stage reads exactly one camera and needs video_loss=True")
        if self.global_token not in ("first", "mean"):
            raise bad("global_token", "'first' or 'mean'")
        for name in ("seq_len", "offset", "chunk", "image_size", "image_tokens", "image_dim", "text_dim", "dim"):
            if getattr(self, name) <= 0:
                raise bad(name, "a positive integer")
        for name in ("n_layers", "n_heads", "resampler_latents", "resampler_depth", "resampler_heads"):
            if getattr(self, name) <= 0:
                raise bad(name, "a positive integer")
        if self.resampler_dim_head <= 0 or self.decoder_depth <= 0 or self.decoder_heads <= 0:
            raise ValueError("GR1Config: resampler_dim_head, decoder_depth and decoder_heads must be positive")
        if self.global_token == "first" and self.image_tokens < 2:
            raise bad("image_tokens", "a CLS token plus patch tokens (>= 2) with global_token='first'")
        if self.dim % self.n_heads:
            raise bad("dim", f"a multiple of n_heads ({self.n_heads})")
        if self.dim % self.decoder_heads:
            raise bad("dim", f"a multiple of decoder_heads ({self.decoder_heads})")
        if self.dim % 4:
            raise bad("dim", "a multiple of 4 (2-D sin-cos positions of the frame decoder)")
        if self.patch_size <= 0 or self.frame_size % self.patch_size:
            raise bad("frame_size", f"a positive multiple of patch_size ({self.patch_size})")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", "a value in [0, 1)")
        if len(self.arm_scale) != 2 or min(self.arm_scale) <= 0:
            raise bad("arm_scale", "two positive scales (metres, radians)")
        if not 0.0 < self.gripper_threshold < 1.0:
            raise bad("gripper_threshold", "a value in (0, 1)")
        if min(self.video_weight, self.arm_weight, self.gripper_weight) < 0:
            raise ValueError("GR1Config: loss weights must be >= 0")

    @property
    def predicts_actions(self) -> bool:
        return self.stage == "finetune"

    @property
    def patch_tokens(self) -> int:
        """Encoder patch tokens per frame (the resampler's input length)."""
        return self.image_tokens - 1 if self.global_token == "first" else self.image_tokens

    @property
    def num_patches(self) -> int:
        """N: patches of a predicted frame."""
        return (self.frame_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        """Pixels per predicted patch (p * p * 3)."""
        return self.patch_size * self.patch_size * 3

    @property
    def horizon(self) -> int:
        """Future frames a training window needs after its last step."""
        needs = [self.offset] * self.video_loss + [self.chunk] * self.predicts_actions
        return max(needs)


_RELEASE = {
    "image_encoder": "vit-b16-mae",
    "image_size": 224,
    "image_tokens": 197,
    "image_dim": 768,
    "global_token": "first",
    "text_encoder": "clip-b32",
    "text_dim": 512,
    "frame_size": 224,
    "patch_size": 16,
    "dim": 384,
    "n_layers": 12,
    "n_heads": 12,
    "resampler_depth": 3,
    "resampler_heads": 4,
    "resampler_dim_head": 128,
    "decoder_heads": 16,
}

# `gr1-release`: the published sizes (frozen MAE ViT-B/16 and CLIP ViT-B/32 text, weights given by path);
# `gr1-tiny`: robo4d's CPU model on the packaged EfficientNet-Lite0 feature map and MiniLM.
PRESETS: dict[str, GR1Config] = {
    "gr1-tiny": GR1Config(),
    "gr1-release": GR1Config(**_RELEASE),
}

STAGE_CAMERAS: dict[str, tuple[str, ...]] = {
    "pretrain": (types.CAM_EGO,),
    "finetune": (types.CAM_FRONT, types.CAM_WRIST),
}


def preset(name: str, stage: Stage = "finetune", *, video_loss: bool = True) -> GR1Config:
    """The named preset configured for a stage (finetune optionally without the video loss)."""
    if name not in PRESETS:
        raise KeyError(unknown_name_message("preset", name, PRESETS))
    if stage not in STAGES:
        raise ValueError(f"GR-1 stage must be 'pretrain' or 'finetune', got {stage!r}")
    if stage == "pretrain" and not video_loss:
        raise ValueError("GR-1 pre-training is the video loss; video_loss=False applies to finetune only")
    return replace(PRESETS[name], stage=stage, cameras=STAGE_CAMERAS[stage], video_loss=video_loss)
