"""A test-only joint-space method (a robot without end-effector poses) and a real checkpoint of it.

It declares what eval/serve must honour without knowing the method: one camera named `image`, a P-wide joint
state (or none), and K x A joint-space action chunks. Its chunk depends on the state and the image, so a
served answer can be compared with the local policy's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robo4d.config import config_to_dict
from robo4d.methods.base import DataSpec, Policy, register_method
from robo4d.train.checkpoint import saved_state, write_checkpoint
from robo4d.types import (
    ACTION,
    ACTION_JOINT,
    CHECKPOINT_CAMERA_MAP,
    CHECKPOINT_IO,
    PAD_MASK,
    STATE,
    STATE_JOINT,
    STATE_NONE,
    ActionChunk,
    Observation,
    PolicyIO,
    image_key,
)

CAMERA = "image"


@dataclass(frozen=True, kw_only=True)
class JointConfig:
    state_dim: int = 5  # P; 0: the policy reads no state
    action_dim: int = 7  # A
    chunk: int = 3  # K
    image_size: tuple[int, int] = (6, 8)  # (H, W)


@register_method("test-joint", JointConfig)
class JointPolicy(Policy):
    def __init__(self, config: JointConfig) -> None:
        super().__init__()
        self.config = config
        self.head = nn.Linear(config.state_dim + 1, config.chunk * config.action_dim)  # state + image mean -> (K*A)

    def data_spec(self) -> DataSpec:
        keys = (image_key(CAMERA), ACTION) + ((STATE,) if self.config.state_dim else ())
        return DataSpec(keys=keys, seq_len=1, horizon=self.config.chunk, produced_by={})

    def io(self) -> PolicyIO:
        cfg = self.config
        return PolicyIO(
            cameras=(CAMERA,), image_size=cfg.image_size, state_kind=STATE_JOINT if cfg.state_dim else STATE_NONE,
            state_dim=cfg.state_dim, action_kind=ACTION_JOINT, action_dim=cfg.action_dim, chunk=cfg.chunk,
        )  # fmt: skip

    def _chunk(self, state: torch.Tensor, image_mean: torch.Tensor) -> torch.Tensor:
        out = self.head(torch.cat([state, image_mean[:, None]], dim=-1))  # (B, K*A)
        return out.reshape(-1, self.config.chunk, self.config.action_dim)  # (B, K, A)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        k = self.config.chunk
        state = batch[STATE][:, 0].float() if self.config.state_dim else batch[ACTION][:, 0, :0].float()  # (B, P)
        image_mean = batch[image_key(CAMERA)][:, 0].float().mean(dim=(1, 2, 3)) / 255  # (B,)
        valid = (~batch[PAD_MASK][:, 1 : k + 1]).float()[..., None]  # (B, K, 1)
        err = (self._chunk(state, image_mean) - batch[ACTION][:, 1 : k + 1].float()).abs() * valid
        return err.sum() / valid.sum().clamp(min=1), {}

    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        image = obs.images[CAMERA]
        assert image.shape == (*self.config.image_size, 3), image.shape
        state = torch.as_tensor(np.asarray(obs.state, np.float32)).reshape(1, self.config.state_dim)
        with torch.no_grad():
            chunk = self._chunk(state, torch.tensor([float(image.mean()) / 255]))[0]
        return ActionChunk(actions=chunk.numpy(), kind=ACTION_JOINT)

    def reset(self) -> None:
        pass


def write_joint_checkpoint(
    stage_dir: Path, config: JointConfig = JointConfig(), *, record_io: bool = True, camera_map: dict | None = None
) -> Path:
    """A real checkpoint of a seeded JointPolicy; `record_io` False = written before the trainer recorded io."""
    torch.manual_seed(0)
    policy = JointPolicy(config)
    meta = {"method": "test-joint", "policy_config": config_to_dict(config), "stage": {}, "step": 1}
    if record_io:
        meta[CHECKPOINT_IO] = asdict(policy.io())
    if camera_map is not None:
        meta[CHECKPOINT_CAMERA_MAP] = camera_map
    return write_checkpoint(stage_dir, 1, model_state=saved_state(policy), config=meta, stats={}, training_state={},
                            keep_last=1)  # fmt: skip
