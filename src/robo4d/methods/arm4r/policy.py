"""ARM4R behind robo4d's Policy interface: window batches -> loss, observations -> absolute action chunks.

Batch layout (from the trainer's window loader; T = seq_len, K = horizon):
    types.image_tokens_key(cam)  (B, T+K, L, C) float32 frozen image tokens (frame source: the feature cache)
    points key (points objective) (B, T+K, N, 3) camera-frame points of `cameras[0]`
    visibility key (points)       (B, T+K, N) bool: the point is seen in that frame
    types.STATE (control)         (B, T+K, 8) eef xyz + quaternion wxyz + gripper; joint space: (B, T+K, P)
    types.ACTION (joint space)    (B, T+K, A) the dataset's own absolute commands
    types.PAD_MASK                (B, T+K) bool, True past the episode end
    types.TASK                    list of B instruction strings (embedded once per distinct string)

Targets: points objective, d_t = points[t+1] - points[t] (K = 1); control, the K future states relative to
p_t (geometry.relative_targets). The action token of step t embeds its first target. At inference it is
rebuilt from the observed poses p_{t-1} -> p_t (exactly the training definition) rather than from the
policy's own previous command as the release does, and predicted deltas are composed onto the CURRENT pose
p_t (the release composes onto the previous step's pose: an off-by-one). A point's motion target counts in
the loss only where the point is visible at both t and t+1: hidden points carry held (or, never seen,
placeholder) positions, and the release — which did not store visibility — trained them as "not moving".

Joint-space control (robo4d's extension, not in the paper or the release): robots whose datasets carry no
end-effector pose (e.g. a LeRobot dataset with a 34-dim joint `observation.state` and `action`) train the
control stage in the dataset's own spaces. Proprio is the state normalised with the dataset's mean/std; the K
targets of step t are the dataset's absolute actions a_t .. a_{t+K-1}, normalised likewise (LeRobot's chunk
convention: a_t is the command issued at frame t); the chunk is returned un-normalised as `ACTION_JOINT`, to be
passed through unchanged. The stats live in buffers (`normalizer.*`), so checkpoints carry them. At inference
the previous step's action token embeds the policy's own previous first row (no command is observed), as the
release does for every action. Everything else (tokens, trunk, L1 loss, masking) is the release's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from robo4d import types
from robo4d.methods.arm4r.config import ARM4RConfig
from robo4d.methods.arm4r.geometry import compose_targets, relative_targets, state_to_pose10
from robo4d.methods.arm4r.inference import StepwiseDecoder
from robo4d.methods.arm4r.model import ARM4RModel, masked_l1
from robo4d.methods.base import DataSpec, Policy, register_method
from robo4d.nn.augment import augmented_lookup
from robo4d.nn.encoders.attached import AttachedEncoders, EncoderSpec, FrozenEncoders
from robo4d.nn.encoders.base import ImageEncoder, TextEncoder
from robo4d.nn.feature_cache import FeatureCache, cached_precision

# Module prefixes for the trainer's stage weight maps (state-dict names start with these).
OBJECTIVE_MODULES = ("model.proprio_encoder", "model.action_encoder", "model.action_decoder")  # re-init at 2 -> 3
SHARED_MODULES = ("model.trunk", "model.text_proj", "model.image_norm", "model.pools")  # (+ model.image_proj)
DATA_MODULES = ("normalizer",)  # joint-space control only: the dataset's stats, set afresh by every stage
STD_FLOOR = 1e-4  # stds below this (constant dimensions) divide by it instead: no blow-up at inference


class JointNormalizer(nn.Module):
    """Mean/std of the dataset's joint state (P,) and action (A,), as buffers saved with the weights."""

    def __init__(self, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))
        self.register_buffer("action_mean", torch.zeros(action_dim))
        self.register_buffer("action_std", torch.ones(action_dim))

    def set(self, stats: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        for key, name in ((types.STATE, "state"), (types.ACTION, "action")):
            mean, std = getattr(self, f"{name}_mean"), getattr(self, f"{name}_std")
            got = stats.get(key, {})
            if "mean" not in got or "std" not in got or np.shape(got["mean"]) != tuple(mean.shape):
                raise ValueError(
                    f"stats of {key}: expected mean and std of shape {tuple(mean.shape)}, got "
                    f"{ {k: np.shape(v) for k, v in got.items() if k in ('mean', 'std')} }"
                )
            mean.copy_(torch.as_tensor(np.asarray(got["mean"]), dtype=torch.float32))
            std.copy_(torch.as_tensor(np.asarray(got["std"]), dtype=torch.float32).clamp(min=STD_FLOOR))

    def state(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.state_mean) / self.state_std.clamp(min=STD_FLOOR)

    def action(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.action_mean) / self.action_std.clamp(min=STD_FLOOR)

    def unnormalize_action(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.action_std.clamp(min=STD_FLOOR) + self.action_mean


_VISIBLE_PREFIX = {
    types.POINTS_PREFIX: types.POINTS_VISIBLE_PREFIX,
    types.GT_POINTS_PREFIX: types.GT_POINTS_VISIBLE_PREFIX,
}


def _visible_key(cfg: ARM4RConfig) -> str:
    return _VISIBLE_PREFIX[cfg.points_prefix] + cfg.points_camera


@register_method("arm4r", ARM4RConfig)
class ARM4RPolicy(Policy):
    def __init__(self, config: ARM4RConfig) -> None:
        super().__init__()
        self.config = config
        self.model = ARM4RModel(config)
        self.normalizer = JointNormalizer(config.input_dim, config.action_dim) if config.joint else None
        self._encoders = AttachedEncoders(
            EncoderSpec(owner="ARM4RConfig", text=config.text_encoder, text_weights=config.text_weights,
                        text_dim=config.text_dim, image=config.image_encoder, image_weights=config.image_weights,
                        image_size=config.image_size, image_tokens=config.image_tokens, image_dim=config.image_dim)
        )  # fmt: skip
        self._decoder = StepwiseDecoder(self.model, config.seq_len)
        self._prev_state: torch.Tensor | None = None  # eef pose p_{t-1}
        self._prev_action: torch.Tensor | None = None  # joint space: (1, A) normalised first row of the last chunk

    # -------------------------------------------------------------------------------------- data fitting
    @classmethod
    def fit_config(cls, config: ARM4RConfig, features: Mapping[str, Any]) -> ARM4RConfig:
        if config.objective == "points":
            key = config.points_prefix + config.points_camera
            if key not in features:
                return config  # the trainer's feature check names what is missing and how to produce it
            shape = tuple(features[key].shape)
            if len(shape) != 2 or shape[1] != 3:
                raise ValueError(f"feature {key} has shape {shape}, expected (N, 3) points")
            return replace(config, num_points=shape[0])
        present = [cam for cam in dict.fromkeys(config.cameras) if types.image_key(cam) in features]
        cameras = tuple(cam if cam in present else present[0] for cam in config.cameras) if present else config.cameras
        space = config.control_space
        state = features.get(types.STATE)
        if space == "auto":
            eef = state is not None and tuple(state.names or ()) == types.EEF_STATE_NAMES
            space = "eef_pose" if eef else "joint"
        if space == "eef_pose":
            return replace(config, cameras=cameras, control_space=space)
        dims = []
        for key in (types.STATE, types.ACTION):
            if key not in features or len(features[key].shape) != 1:
                got = f"shape {tuple(features[key].shape)}" if key in features else "no such feature"
                raise ValueError(
                    f"feature {key}: {got}; ARM4R's joint-space control stage reads a (P,) state and an (A,) action "
                    "per frame (a dataset without an end-effector pose)"
                )
            dims.append(int(features[key].shape[0]))
        return replace(config, cameras=cameras, control_space=space, joint_state_dim=dims[0], joint_action_dim=dims[1])

    def check_init_from(self, source_config: dict[str, Any]) -> None:
        cfg = self.config
        points = source_config.get("num_points")
        if cfg.objective == "points" and source_config.get("objective") == "points" and points != cfg.num_points:
            grid = math.isqrt(points) if isinstance(points, int) else "N"
            raise ValueError(
                f"it was trained on {points} points per frame, but this stage's "
                f"{cfg.points_prefix + cfg.points_camera} has shape ({cfg.num_points}, 3); extract every "
                f"dataset's tracks with the same grid (e.g. `robo4d extract tracks --grid {grid}`)"
            )

    def set_normalization(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        if self.normalizer is not None:
            self.normalizer.set(stats)

    # ----------------------------------------------------------------------------------------- encoders
    def use_encoders(self, *, image: ImageEncoder, text: TextEncoder) -> None:
        """Attach frozen encoders (tests, or encoders built elsewhere); their sizes must match the config."""
        self._encoders.attach(image=image, text=text)

    def encoders(self) -> FrozenEncoders:
        """The frozen encoders (kept off the module tree), the image encoder on the policy's device."""
        return self._encoders.get(next(self.parameters()).device)

    def embed_texts(self, texts: list[str] | tuple[str, ...]) -> torch.Tensor:
        """Instructions -> (n, E) frozen embeddings, each distinct string encoded once."""
        return self._encoders.embed_texts(texts, next(self.parameters()).device)

    def frame_sources(self, dataset: Any) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        cache, image, copies = FeatureCache(), self.encoders().image, self.config.image_augment
        cams = dict.fromkeys(self.config.cameras)
        if copies:
            return {types.image_tokens_key(cam): augmented_lookup(cache, dataset, cam, image, copies) for cam in cams}
        return {types.image_tokens_key(cam): cache.lookup(dataset, cam, image) for cam in cams}

    # ----------------------------------------------------------------------------------------- training
    def data_spec(self) -> DataSpec:
        cfg = self.config
        produced_by = {
            types.image_tokens_key(cam): f"frozen {cfg.image_encoder} tokens of camera {cam!r} (the policy's "
            f"feature cache; needs {types.image_key(cam)})"
            for cam in dict.fromkeys(cfg.cameras)
        }
        derived_from = {types.image_tokens_key(cam): types.image_key(cam) for cam in dict.fromkeys(cfg.cameras)}
        if cfg.objective == "points":
            made_by = (
                "robo4d world human (ground-truth tracks of the embedded world)"
                if cfg.points_prefix == types.GT_POINTS_PREFIX
                else f"robo4d extract tracks --dataset D --camera {cfg.points_camera}"
            )
            produced_by[cfg.points_prefix + cfg.points_camera] = made_by
            produced_by[_visible_key(cfg)] = made_by
            shapes = {cfg.points_prefix + cfg.points_camera: (cfg.num_points, 3), _visible_key(cfg): (cfg.num_points,)}
        elif cfg.joint:
            produced_by[types.STATE] = "a robot dataset's proprio vector"
            produced_by[types.ACTION] = "a robot dataset's commands"
            shapes = {types.STATE: (cfg.input_dim,), types.ACTION: (cfg.action_dim,)}
        else:
            produced_by[types.STATE] = "robo4d world robot (robot demonstrations carry the eef state)"
            shapes = {types.STATE: (types.STATE_DIM,)}
        return DataSpec(
            keys=tuple(produced_by), seq_len=cfg.seq_len, horizon=cfg.horizon, produced_by=produced_by,
            shapes=shapes, derived_from=derived_from,
        )  # fmt: skip

    def io(self) -> types.PolicyIO:
        cfg = self.config
        side = cfg.image_size or int(self.encoders().image.image_size)  # type: ignore[attr-defined]
        if cfg.objective == "points":
            return types.PolicyIO(
                cameras=tuple(dict.fromkeys(cfg.cameras)), image_size=(side, side), state_kind=types.STATE_NONE,
                state_dim=0, action_kind="points", action_dim=cfg.action_dim, chunk=1,
            )  # fmt: skip
        if cfg.joint:
            return types.PolicyIO(
                cameras=tuple(dict.fromkeys(cfg.cameras)), image_size=(side, side), state_kind=types.STATE_JOINT,
                state_dim=cfg.input_dim, action_kind=types.ACTION_JOINT, action_dim=cfg.action_dim, chunk=cfg.horizon,
            )  # fmt: skip
        return types.PolicyIO(
            cameras=tuple(dict.fromkeys(cfg.cameras)), image_size=(side, side), state_kind=types.STATE_EEF_POSE,
            state_dim=types.STATE_DIM, action_kind=types.ACTION_EEF_POSE, action_dim=types.STATE_DIM,
            chunk=cfg.horizon,
        )  # fmt: skip

    def targets(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(proprio (B, T, P), targets (B, T, K, A), valid (B, T, K) or, for points, (B, T, 1, A)) of a batch."""
        cfg = self.config
        t, k = cfg.seq_len, cfg.horizon
        pad = batch[types.PAD_MASK]  # (B, T+K)
        future = torch.arange(t, device=pad.device)[:, None] + torch.arange(1, k + 1, device=pad.device)  # (T, K)
        if cfg.objective == "points":
            points = batch[cfg.points_prefix + cfg.points_camera].flatten(2).float()  # (B, T+1, 3N)
            proprio = points[:, :t]  # (B, T, P)
            target = (points[:, 1 : t + 1] - proprio).unsqueeze(2)  # (B, T, 1, A)
            seen = batch[_visible_key(cfg)].bool()  # (B, T+1, N)
            moved = (seen[:, :t] & seen[:, 1 : t + 1]).repeat_interleave(3, dim=-1)  # (B, T, 3N): x, y, z each
            return proprio, target, (~pad[:, future])[..., None] & moved[:, :, None]  # (B, T, 1, A)
        elif cfg.joint:
            assert self.normalizer is not None
            chunk = future - 1  # (T, K): a_t .. a_{t+K-1}, the commands issued from frame t on
            proprio = self.normalizer.state(batch[types.STATE][:, :t].float())  # (B, T, P)
            target = self.normalizer.action(batch[types.ACTION].float())[:, chunk]  # (B, T, K, A)
            return proprio, target, ~pad[:, chunk]
        else:
            state = batch[types.STATE].float()  # (B, T+K, 8)
            proprio = state_to_pose10(state[:, :t], cfg.rot6d)  # (B, T, 10)
            target = relative_targets(state[:, :t], state[:, future], cfg.rot6d)  # (B, T, K, 10)
        return proprio, target, ~pad[:, future]

    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        t = cfg.seq_len
        proprio, target, valid = self.targets(batch)
        if self.training and cfg.proprio_noise:
            proprio = proprio + cfg.proprio_noise * torch.randn_like(proprio)  # the inputs only; targets stay exact
        text = self.embed_texts(batch[types.TASK])[:, None].expand(-1, t, -1)  # (B, T, E)
        images = {cam: batch[types.image_tokens_key(cam)][:, :t].float() for cam in dict.fromkeys(cfg.cameras)}
        tokens = self.model.step_tokens(text, images, proprio, target[:, :, 0])  # (B, T, 3, D)
        pred = self.model(tokens)  # (B, T, K, A)
        loss = masked_l1(pred, target, valid)
        return loss, {"l1": float(loss.detach()), "valid_fraction": float(valid.float().mean())}

    # ---------------------------------------------------------------------------------------- inference
    def reset(self) -> None:
        self._decoder.reset()
        self._prev_state = None
        self._prev_action = None

    @torch.no_grad()
    def predict_action_chunk(self, obs: types.Observation) -> types.ActionChunk:
        cfg = self.config
        if cfg.objective != "control":
            raise ValueError(
                "ARM4R with objective 'points' predicts point motion, not robot actions; "
                "fine-tune it with objective='control' (stage 3) before running it on a robot"
            )
        device = next(self.parameters()).device
        state = torch.as_tensor(np.array(obs.state, dtype=np.float32), device=device)  # a copy: may be read-only
        if state.shape != (cfg.input_dim if cfg.joint else types.STATE_DIM,):
            want = cfg.input_dim if cfg.joint else types.STATE_DIM
            raise ValueError(f"Observation.state: expected shape ({want},), got {tuple(state.shape)}")
        frozen = self.encoders()
        images = {}
        for cam in dict.fromkeys(cfg.cameras):
            if cam not in obs.images:
                raise KeyError(f"Observation.images lacks camera {cam!r}; the policy reads {list(cfg.cameras)}")
            frame = torch.as_tensor(np.ascontiguousarray(obs.images[cam]))[None]  # (1, H, W, 3) uint8
            images[cam] = cached_precision(frozen.image.encode(frame)).to(device)  # (1, L, C) as in training
        language = self.model.text_proj(self.embed_texts([obs.task]))  # (1, D)
        if cfg.joint:
            assert self.normalizer is not None
            state_tok = self.model.state_token(images, self.normalizer.state(state)[None])  # (1, D)
            prev = None if self._prev_action is None else self.model.action_encoder(self._prev_action)  # (1, D)
            chunk = self._decoder.step(language, state_tok, prev)[0]  # (K, A) normalised
            self._prev_action = chunk[:1]  # the command this step issues
            actions = self.normalizer.unnormalize_action(chunk)  # (K, A) the dataset's own units
            return types.ActionChunk(actions=actions.float().cpu().numpy(), kind=types.ACTION_JOINT)
        state_tok = self.model.state_token(images, state_to_pose10(state, cfg.rot6d)[None])  # (1, D)
        prev_action = None
        if self._prev_state is not None:
            delta = relative_targets(self._prev_state, state[None], cfg.rot6d)[0]  # (10,) p_{t-1} -> p_t
            prev_action = self.model.action_encoder(delta[None])  # (1, D)
        deltas = self._decoder.step(language, state_tok, prev_action)[0]  # (K, 10)
        self._prev_state = state
        actions = compose_targets(state, deltas, cfg.rot6d)  # (K, 8) absolute, against the current pose
        return types.ActionChunk(actions=actions.float().cpu().numpy(), kind=types.ACTION_EEF_POSE)
