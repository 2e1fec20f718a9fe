"""IGOR behind robo4d's Policy interface: one policy class whose objective picks the modules and the loss.

Batch layout (from the trainer's window loader; H = history, K = horizon of the objective):
    types.FRAMES         (B, H+K, S, S, 3) uint8 frames of the dataset's IGOR camera (frame source)
    types.GOAL_FRAMES    (B, H+K, S, S, 3) uint8 each frame's goal o_{t+k} (frame source)
    types.STATE          (B, H+K, 8) eef xyz + quaternion wxyz + gripper (control)
    types.PAD_MASK       (B, H+K) bool, True past the episode end
    types.TASK           list of B instructions (foundation and control)

Modules per objective (state-dict prefixes for the stage weight maps); "frozen" modules are loaded from the
previous stage and saved with every checkpoint (they are learned, not rebuilt from a named source):
    lam         lam (trains)
    world       lam (frozen), world
    foundation  lam (frozen), foundation
    control     lam (frozen), foundation (frozen), low_level

Latent-action labels. The world model and the foundation policy learn from the latent action a_t of each
window's newest frame. The frozen LAM inside the policy computes it from (o_t, o_{t+k}) as it trains, without
crops: exactly the function `robo4d label latent-actions` writes into datasets, so the recipe needs no
non-training step between the LAM and the later stages, and a label can never come from another LAM than
the one the checkpoint carries. In the control stage the LAM's latent of the robot demo is compared with the
frozen foundation's prediction (metric `latent_l2`): how well the foundation's latents fit the robot data.

Control targets are the tau future states relative to the current one, positions divided by `action_scale`
(a centimetre becomes 1, like the quaternion and gripper deltas, which stay as they are); at
inference the chained policy (foundation -> low-level) adds them back onto the observed state, so chunks are
absolute end-effector poses (types.ACTION_EEF_POSE). The quaternion is renormalised after the addition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from robo4d import types
from robo4d.methods.base import DataSpec, Policy, register_method
from robo4d.methods.igor.blocks import to_pixels
from robo4d.methods.igor.config import IGORConfig
from robo4d.methods.igor.foundation import FoundationPolicy, LowLevelHead
from robo4d.methods.igor.frames import FrameTable
from robo4d.methods.igor.lam import LatentActionModel
from robo4d.methods.igor.world_model import WorldModel
from robo4d.nn.encoders.attached import AttachedEncoders, EncoderSpec
from robo4d.nn.encoders.base import TextEncoder

_VIDEO = "the dataset's RGB video of a camera in IGORConfig.cameras, resized (frame source)"


def latent_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance per latent token, averaged (paper Eq. 4): (B, N, D) x 2 -> ()."""
    return (pred - target).pow(2).sum(-1).mean()


@register_method("igor", IGORConfig)
class IGORPolicy(Policy):
    def __init__(self, config: IGORConfig) -> None:
        super().__init__()
        self.config = config
        self.lam = LatentActionModel(config)
        if config.objective != "lam":
            self.lam.requires_grad_(False)
        if config.objective == "world":
            self.world = WorldModel(config)
        if config.objective in ("foundation", "control"):
            self.foundation = FoundationPolicy(config)
        if config.objective == "control":
            self.foundation.requires_grad_(False)  # only the low-level head trains (paper, Sec. 2.3)
            self.low_level = LowLevelHead(config)
        self._encoders = AttachedEncoders(
            EncoderSpec(owner="IGORConfig", text=config.text_encoder, text_weights=config.text_weights,
                        text_dim=config.text_dim)
        )  # fmt: skip
        self._history: deque[torch.Tensor] = deque(maxlen=config.history)

    def frozen_modules(self) -> tuple[torch.nn.Module, ...]:
        """Learned modules this objective does not train (they stay in eval mode: the VQ's usage statistics and
        dead-code restarts belong to LAM training alone)."""
        objective = self.config.objective
        if objective == "lam":
            return ()
        return (self.lam, self.foundation) if objective == "control" else (self.lam,)

    def train(self, mode: bool = True) -> IGORPolicy:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    # ----------------------------------------------------------------------------------------- text
    def use_text_encoder(self, text: TextEncoder) -> None:
        """Attach a frozen text encoder (tests, or one built elsewhere); its width must match the config."""
        self._encoders.attach(text=text)

    def embed_texts(self, texts: list[str] | tuple[str, ...]) -> torch.Tensor:
        """Instructions -> (n, E), each distinct string encoded once."""
        return self._encoders.embed_texts(texts, self._device())

    def _delta_scale(self) -> torch.Tensor:
        """(8,) units of the low-level head's outputs: action_scale metres for xyz, 1 for quaternion and gripper."""
        scale = torch.ones(types.STATE_DIM, device=self._device())
        scale[:3] = self.config.action_scale
        return scale

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # ----------------------------------------------------------------------------------------- training
    def frame_sources(self, dataset: Any) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        return FrameTable(dataset, self.config).sources()

    def data_spec(self) -> DataSpec:
        cfg = self.config
        produced_by = {types.FRAMES: _VIDEO, types.GOAL_FRAMES: _VIDEO}
        if cfg.objective == "control":
            produced_by[types.STATE] = "robo4d world robot (robot demonstrations carry the eef state)"
        seq_len = 1 if cfg.objective == "lam" else cfg.history
        horizon = cfg.tau if cfg.objective == "control" else 0
        return DataSpec(keys=tuple(produced_by), seq_len=seq_len, horizon=horizon, produced_by=produced_by)

    def io(self) -> types.PolicyIO:
        cfg = self.config
        size = (cfg.image_size, cfg.image_size)
        if cfg.objective != "control":
            width = 3 * cfg.image_size**2 if cfg.objective == "world" else cfg.latent_dim
            kind = "frames" if cfg.objective == "world" else "latent_action"
            return types.PolicyIO(cameras=cfg.cameras, image_size=size, state_kind=types.STATE_NONE, state_dim=0,
                                  action_kind=kind, action_dim=width, chunk=1)  # fmt: skip
        return types.PolicyIO(
            cameras=cfg.cameras[:1], image_size=size, state_kind=types.STATE_EEF_POSE, state_dim=types.STATE_DIM,
            action_kind=types.ACTION_EEF_POSE, action_dim=types.STATE_DIM, chunk=cfg.tau,
        )  # fmt: skip

    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        h = cfg.history
        if cfg.objective == "lam":
            pair = torch.stack((batch[types.FRAMES][:, 0], batch[types.GOAL_FRAMES][:, 0]), dim=1)  # (B, 2, S, S, 3)
            return self.lam.loss(to_pixels(pair, cfg.image_size))
        frames = to_pixels(batch[types.FRAMES][:, :h], cfg.image_size)  # (B, H, 3, S, S)
        goal = to_pixels(batch[types.GOAL_FRAMES][:, h - 1], cfg.image_size)  # (B, 3, S, S) o_{t+k}
        with torch.no_grad():
            label = self.lam.encode(torch.stack((frames[:, -1], goal), dim=1)).quantized  # (B, N, D) a_t
        if cfg.objective == "world":
            loss = self.world.loss(goal, frames, label)
            return loss, {"flow_mse": float(loss.detach())}
        text = self.embed_texts(batch[types.TASK])  # (B, E)
        if cfg.objective == "foundation":
            pred, _ = self.foundation(frames, text)  # (B, N, D)
            loss = latent_l2(pred, label)
            return loss, {"latent_l2": float(loss.detach())}
        with torch.no_grad():
            latent, tokens = self.foundation(frames, text)
        pred = self.low_level(tokens, latent)  # (B, tau, 8)
        state = batch[types.STATE].float()  # (B, H+tau, 8)
        target = (state[:, h:] - state[:, h - 1 : h]) / self._delta_scale()  # (B, tau, 8)
        valid = (~batch[types.PAD_MASK][:, h:]).to(pred.dtype)[..., None].expand_as(pred)  # (B, tau, 8)
        loss = ((pred - target).pow(2) * valid).sum() / valid.sum().clamp(min=1.0)
        metrics = {"action_mse": float(loss.detach()), "latent_l2": float(latent_l2(latent, label)),
                   "valid_fraction": float(valid.mean())}  # fmt: skip
        return loss, metrics

    # ---------------------------------------------------------------------------------------- inference
    def reset(self) -> None:
        self._history.clear()

    @torch.no_grad()
    def predict_action_chunk(self, obs: types.Observation) -> types.ActionChunk:
        cfg = self.config
        if cfg.objective != "control":
            raise ValueError(
                f"IGOR with objective {cfg.objective!r} predicts {self.io().action_kind}, not robot actions; "
                "train the control stage (frozen foundation + low-level head) before running it on a robot"
            )
        cam = cfg.cameras[0]
        if cam not in obs.images:
            raise KeyError(f"Observation.images lacks camera {cam!r}; the IGOR policy reads {cam!r}")
        state = torch.as_tensor(np.asarray(obs.state, dtype=np.float32), device=self._device())
        if state.shape != (types.STATE_DIM,):
            raise ValueError(f"Observation.state: expected shape ({types.STATE_DIM},), got {tuple(state.shape)}")
        frame = to_pixels(torch.as_tensor(np.ascontiguousarray(obs.images[cam]))[None], cfg.image_size)
        self._history.append(frame.to(self._device()))  # (1, 3, S, S)
        while len(self._history) < cfg.history:  # episode start: the first frame stands in for the missing past
            self._history.appendleft(self._history[0])
        frames = torch.stack(tuple(self._history), dim=1)  # (1, H, 3, S, S)
        latent, tokens = self.foundation(frames, self.embed_texts([obs.task]))
        deltas = self.low_level(tokens, latent)[0] * self._delta_scale()  # (tau, 8)
        poses = state[None] + deltas  # (tau, 8)
        poses[:, 3:7] = torch.nn.functional.normalize(poses[:, 3:7], dim=-1)
        return types.ActionChunk(actions=poses.float().cpu().numpy(), kind=types.ACTION_EEF_POSE)

    @torch.no_grad()
    def latent_actions(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LAM objective: uint8 (B, 2, H, W, 3) frame pairs (o_t, o_{t+k}) -> (codes (B, N) int64, vectors
        (B, N, D)), without crops (the labelling path)."""
        if self.config.objective != "lam":
            raise ValueError(f"latent actions come from an IGOR 'lam' checkpoint, not {self.config.objective!r}")
        latent = self.lam.encode(to_pixels(pairs.to(self._device()), self.config.image_size))
        return latent.codes, latent.quantized
