"""GR-1 behind robo4d's Policy interface: window batches -> losses, observations -> absolute action chunks.

Batch layout (from the trainer's window loader; T = seq_len, H = the config's horizon):
    types.image_tokens_key(cam)  (B, T+H, L, C) frozen image tokens (frame source: the feature cache)
    patch_pixels_key(cam)        (B, T+H, N, p*p*3) target pixels in [0, 1] (frame source; video loss only)
    types.STATE (finetune)       (B, T+H, 8) eef xyz + quaternion wxyz + gripper opening
    types.PAD_MASK               (B, T+H) bool, True past the episode end
    types.TASK                   list of B instruction strings (embedded once per distinct string)

Losses: video, the frame `offset` steps ahead of each step (MSE on per-patch normalised pixels; the release's
code predicts the current frame, its `fwd_pred_next_n=3` is never read); arm Smooth-L1 and gripper BCE of the
K next poses relative to the current one (actions.py). Each counts only where its target lies inside the
episode. The paper sums the losses; its weights are not published, so each has a config weight (default 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robo4d import types
from robo4d.methods.base import DataSpec, Policy, register_method
from robo4d.methods.gr1 import actions
from robo4d.methods.gr1.config import FRAMES_ACTION_KIND, GR1Config, patch_pixels_key
from robo4d.methods.gr1.inference import StepwiseRunner
from robo4d.methods.gr1.model import GR1Model, action_losses, frame_loss
from robo4d.nn.encoders.attached import AttachedEncoders, EncoderSpec, FrozenEncoders
from robo4d.nn.encoders.base import ImageEncoder, TextEncoder

# Module prefixes for stage weight maps (state-dict names start with these).
SHARED_MODULES = ("model.trunk", "model.resampler", "model.embed_lang", "model.embed_timestep", "model.embed_ln")
SLOT_MODULES = ("model.embed_img", "model.embed_patch", "model.obs_queries")  # + ".{slot}"
ACTION_MODULES = (
    "model.embed_arm_state",
    "model.embed_gripper_state",
    "model.embed_state",
    "model.action_queries",
    "model.action_head",
)
DECODER_MODULE = "model.decoder"


class PatchPixels:
    """Target frames as an `ImageEncoder`, so the feature cache stores them like encoder tokens:
    (B, H, W, 3) uint8 -> resized to frame_size (antialiased bilinear) -> (B, N, p*p*3) float32 in [0, 1],
    patches row-major, each patch's pixels row-major with RGB innermost (MAE's patchify order)."""

    def __init__(self, frame_size: int, patch_size: int) -> None:
        self.frame_size, self.patch_size = frame_size, patch_size
        self.name = f"patch-pixels-{frame_size}px-p{patch_size}"
        self.num_tokens = (frame_size // patch_size) ** 2
        self.dim = patch_size * patch_size * 3

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            got = f"{images.dtype} {tuple(images.shape)}"
            raise ValueError(f"{self.name}: images must be uint8 (B, H, W, 3), got {got}")
        s, p = self.frame_size, self.patch_size
        x = images.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True).clamp(0.0, 1.0)
        g = s // p
        x = x.view(-1, 3, g, p, g, p).permute(0, 2, 4, 3, 5, 1)  # (B, g, g, p, p, 3)
        return x.reshape(x.shape[0], g * g, p * p * 3)


@register_method("gr1", GR1Config)
class GR1Policy(Policy):
    def __init__(self, config: GR1Config) -> None:
        super().__init__()
        self.config = config
        self.model = GR1Model(config)
        self._encoders = AttachedEncoders(
            EncoderSpec(owner="GR1Config", text=config.text_encoder, text_weights=config.text_weights,
                        text_dim=config.text_dim, image=config.image_encoder, image_weights=config.image_weights,
                        image_size=config.image_size, image_tokens=config.image_tokens, image_dim=config.image_dim)
        )  # fmt: skip
        self._runner = StepwiseRunner(self.model, config.seq_len)

    # ----------------------------------------------------------------------------------------- encoders
    def use_encoders(self, *, image: ImageEncoder, text: TextEncoder) -> None:
        """Attach frozen encoders (tests, or encoders built elsewhere); their sizes must match the config."""
        self._encoders.attach(image=image, text=text)

    def encoders(self) -> FrozenEncoders:
        """The frozen encoders (kept off the module tree), the image encoder on the policy's device."""
        return self._encoders.get(self.model.embed_lang.weight.device)

    def embed_texts(self, texts: list[str] | tuple[str, ...]) -> torch.Tensor:
        """Instructions -> (n, E) frozen embeddings, each distinct string encoded once."""
        return self._encoders.embed_texts(texts, self.model.embed_lang.weight.device)

    def pixel_encoder(self) -> PatchPixels:
        return PatchPixels(self.config.frame_size, self.config.patch_size)

    def frame_sources(self, dataset: Any) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        from robo4d.nn.feature_cache import FeatureCache

        cache, image = FeatureCache(), self.encoders().image
        sources = {types.image_tokens_key(cam): cache.lookup(dataset, cam, image) for cam in self.config.cameras}
        if self.config.video_loss:
            pixels = self.pixel_encoder()
            sources |= {patch_pixels_key(cam): cache.lookup(dataset, cam, pixels) for cam in self.config.cameras}
        return sources

    # ----------------------------------------------------------------------------------------- training
    def data_spec(self) -> DataSpec:
        cfg = self.config
        produced_by, derived_from, shapes = {}, {}, {}
        for cam in cfg.cameras:
            needs = f"needs {types.image_key(cam)}"
            produced_by[types.image_tokens_key(cam)] = f"frozen {cfg.image_encoder} tokens of {cam!r} ({needs})"
            derived_from[types.image_tokens_key(cam)] = types.image_key(cam)
            if cfg.video_loss:
                produced_by[patch_pixels_key(cam)] = f"the feature cache's target pixels of {cam!r} ({needs})"
                derived_from[patch_pixels_key(cam)] = types.image_key(cam)
        if cfg.predicts_actions:
            produced_by[types.STATE] = "robo4d world robot (robot demonstrations carry the eef state)"
            shapes[types.STATE] = (types.STATE_DIM,)
        return DataSpec(
            keys=tuple(produced_by),
            seq_len=cfg.seq_len,
            horizon=cfg.horizon,
            produced_by=produced_by,
            shapes=shapes,
            derived_from=derived_from,
        )

    def io(self) -> types.PolicyIO:
        cfg = self.config
        size = (cfg.image_size, cfg.image_size)
        if not cfg.predicts_actions:
            return types.PolicyIO(
                cameras=cfg.cameras, image_size=size, state_kind=types.STATE_NONE, state_dim=0,
                action_kind=FRAMES_ACTION_KIND, action_dim=cfg.num_patches * cfg.patch_dim, chunk=1,
            )  # fmt: skip
        return types.PolicyIO(
            cameras=cfg.cameras, image_size=size, state_kind=types.STATE_EEF_POSE, state_dim=types.STATE_DIM,
            action_kind=types.ACTION_EEF_POSE, action_dim=types.STATE_DIM, chunk=cfg.chunk,
        )  # fmt: skip

    def step_inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """The window's input tokens (B, T, n_in, D)."""
        cfg, model = self.config, self.model
        t = cfg.seq_len
        lang = model.lang_token(self.embed_texts(batch[types.TASK]))  # (B, D)
        frames = [
            model.frame_tokens(slot, batch[types.image_tokens_key(cam)][:, :t].float())  # (B, T, K+1, D)
            for slot, cam in enumerate(cfg.cameras)
        ]
        state = None
        if cfg.predicts_actions:
            arm, grip = actions.state_inputs(batch[types.STATE][:, :t].float(), cfg.gripper_threshold)
            state = model.state_token(arm, grip)  # (B, T, D)
        return model.step_inputs(lang, frames, state)

    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        t = cfg.seq_len
        pad = batch[types.PAD_MASK]  # (B, T+H)
        hidden = self.model(self.step_inputs(batch), obs=cfg.video_loss)  # (B, T, n, D)
        loss = hidden.new_zeros(())
        metrics: dict[str, float] = {}
        if cfg.video_loss:
            valid = ~pad[:, cfg.offset : cfg.offset + t]  # (B, T): the target frame lies inside the episode
            for slot, cam in enumerate(cfg.cameras):
                pixels = batch[patch_pixels_key(cam)][:, cfg.offset : cfg.offset + t].float()  # (B, T, N, P)
                video = frame_loss(self.model.predict_frames(hidden, slot), pixels, valid)
                loss = loss + cfg.video_weight * video / len(cfg.cameras)
                metrics[f"video_mse.{cam}"] = float(video.detach())
        if cfg.predicts_actions:
            state = batch[types.STATE].float()  # (B, T+H, 8)
            future = torch.arange(t, device=pad.device)[:, None] + torch.arange(1, cfg.chunk + 1, device=pad.device)
            arm_target, open_target = actions.delta_targets(
                state[:, :t], state[:, future], cfg.arm_scale, cfg.gripper_threshold
            )  # (B, T, K, 6), (B, T, K)
            arm, gripper = self.model.predict_actions(hidden)
            arm_loss, grip_loss = action_losses(arm, gripper, arm_target, open_target, ~pad[:, future])
            loss = loss + cfg.arm_weight * arm_loss + cfg.gripper_weight * grip_loss
            metrics |= {"arm_smooth_l1": float(arm_loss.detach()), "gripper_bce": float(grip_loss.detach())}
        return loss, metrics

    # ---------------------------------------------------------------------------------------- inference
    def reset(self) -> None:
        self._runner.reset()

    @torch.no_grad()
    def predict_action_chunk(self, obs: types.Observation) -> types.ActionChunk:
        cfg, model = self.config, self.model
        if not cfg.predicts_actions:
            raise ValueError(
                "GR-1 in its pretrain stage predicts future frames, not robot actions; fine-tune it "
                "(stage 'finetune') before running it on a robot"
            )
        device = model.embed_lang.weight.device
        state = torch.as_tensor(np.asarray(obs.state, dtype=np.float32), device=device)
        if state.shape != (types.STATE_DIM,):
            raise ValueError(f"Observation.state: expected shape ({types.STATE_DIM},), got {tuple(state.shape)}")
        frozen = self.encoders()
        frames = []
        for slot, cam in enumerate(cfg.cameras):
            if cam not in obs.images:
                raise KeyError(f"Observation.images lacks camera {cam!r}; the policy reads {list(cfg.cameras)}")
            frame = torch.as_tensor(np.ascontiguousarray(obs.images[cam]))[None]  # (1, H, W, 3) uint8
            frames.append(model.frame_tokens(slot, frozen.image.encode(frame).to(device)))  # (1, K+1, D)
        arm_in, grip_in = actions.state_inputs(state[None], cfg.gripper_threshold)
        lang = model.lang_token(self.embed_texts([obs.task]))  # (1, D)
        inputs = model.step_inputs(lang, [f[:, None] for f in frames], model.state_token(arm_in, grip_in)[:, None])
        arm, gripper = model.action_head(self._runner.step(inputs[:, 0]))  # (1, K, 6), (1, K)
        rows = actions.compose(state, arm[0], gripper[0].sigmoid(), cfg.arm_scale)  # (K, 8)
        return types.ActionChunk(actions=rows.float().cpu().numpy(), kind=types.ACTION_EEF_POSE)
