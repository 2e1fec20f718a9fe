"""ARM4R's trainable network and loss (modules only; batches and inference live in policy.py).

Paper: D. Niu, Y. Sharma, et al., "Pre-training Auto-regressive Robotic Models with 4D Representations",
ICML 2025 (arXiv 2502.13142); authors' code: github.com/Dantong88/arm4r (a fork of ICRT).

Each time step is three tokens [language, state, action] fed to a causal LLaMA-style trunk:
    language  text_proj(frozen sentence embedding)                       MLP E -> 512 -> D
    state     per camera slot i: pools[i]([image_norm(frozen image tokens) (-> image_proj), proprio_encoder(p_t)])
              -> D / slots each, concatenated to D
    action    action_encoder(a_t)                                         MLP A -> A -> D
The readout at the state token, action_decoder: MLP D -> 128 -> A*K, predicts the step's targets. a_t is the
step's own first target (teacher forcing); because it comes after the state token, the readout at step t only
sees a_0 .. a_{t-1}: the previous step's action. Step 0's readout sees no action at all, so no zero
placeholder is needed (in a window the last step's action token is computed but nothing reads it).

Module attribute names (the trainer's stage weight maps use them, prefixed by `model.` in the policy):
    trunk, text_proj, image_norm, image_proj (only when the image width differs from pool_dim), pools,
    proprio_encoder, action_encoder, action_decoder.
Stage 1 -> 2 keeps everything; 2 -> 3 keeps all but proprio_encoder, action_encoder and action_decoder
(their widths depend on the objective), as the release does.

Where robo4d differs from the authors' code, and why:
- The frozen image encoder is not part of this module: tokens arrive pre-computed (a feature cache during
  training, the encoder once per step at inference) instead of re-running the ViT for every sample.
- The language MLP's hidden width is 512 whatever the text width E (the release used in_features = 512 with
  CLIP only); its output is D, not the image width (the same number in every released configuration).
- The L1 loss is masked per predicted step past the episode end instead of training on repeated last frames.
- A joint-space control stage (robo4d's extension, for robots whose data has no end-effector pose): proprio
  and action widths are the dataset's, inputs and targets normalised with its stats (see policy.py).
- No unused branches (LoRA, biases, GMM/diffusion heads, EOS prediction, a proprio decoder, camera and
  modality embeddings): the released configurations switch them all off.
"""

from __future__ import annotations

import torch
from torch import nn

from robo4d.methods.arm4r.config import ARM4RConfig
from robo4d.nn.heads import AttentionPool, Mlp
from robo4d.nn.transformer import CausalTransformer, KVCache

TOKENS_PER_STEP = 3  # [language, state, action]
STATE_SLOT = 1  # index of the state token within a step


class ARM4RModel(nn.Module):
    def __init__(self, cfg: ARM4RConfig) -> None:
        super().__init__()
        self.cfg = cfg
        slot_dim = cfg.dim // len(cfg.cameras)
        self.trunk = CausalTransformer(cfg.trunk)
        self.text_proj = Mlp(cfg.text_dim, cfg.text_hidden, cfg.dim)
        self.image_norm = nn.LayerNorm(cfg.image_dim, eps=1e-6)
        self.image_proj = nn.Linear(cfg.image_dim, cfg.pool_dim) if cfg.image_dim != cfg.pool_dim else None
        self.pools = nn.ModuleList(
            AttentionPool(cfg.pool_dim, slot_dim, num_heads=cfg.pool_heads, mlp_ratio=cfg.pool_mlp_ratio)
            for _ in cfg.cameras
        )
        self.proprio_encoder = Mlp(cfg.input_dim, cfg.input_dim, cfg.pool_dim)
        self.action_encoder = Mlp(cfg.action_dim, cfg.action_dim, cfg.dim)
        self.action_decoder = Mlp(cfg.dim, cfg.decoder_hidden, cfg.action_dim * cfg.horizon)

    def image_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Frozen image tokens (..., L, C) -> normalised pool inputs (..., L, pool_dim)."""
        x = self.image_norm(tokens)
        return x if self.image_proj is None else self.image_proj(x)

    def state_token(self, images: dict[str, torch.Tensor], proprio: torch.Tensor) -> torch.Tensor:
        """images: cam -> (..., L, C) frozen tokens; proprio (..., P) -> (..., D)."""
        prop = self.proprio_encoder(proprio).unsqueeze(-2)  # (..., 1, pool_dim)
        feats = {cam: self.image_features(tokens) for cam, tokens in images.items()}  # each camera once
        slots = []
        for cam, pool in zip(self.cfg.cameras, self.pools, strict=True):
            x = torch.cat((feats[cam], prop), dim=-2)  # (..., L+1, pool_dim)
            lead = x.shape[:-2]
            slots.append(pool(x.reshape(-1, *x.shape[-2:])).reshape(*lead, -1))  # (..., D / slots)
        return torch.cat(slots, dim=-1)  # (..., D)

    def step_tokens(
        self,
        text: torch.Tensor,  # (..., E) frozen sentence embedding
        images: dict[str, torch.Tensor],  # cam -> (..., L, C)
        proprio: torch.Tensor,  # (..., P)
        action: torch.Tensor,  # (..., A) the step's action a_t
    ) -> torch.Tensor:
        """The three tokens of each step: (..., 3, D)."""
        return torch.stack(
            (self.text_proj(text), self.state_token(images, proprio), self.action_encoder(action)), dim=-2
        )

    def readout(self, hidden: torch.Tensor) -> torch.Tensor:
        """Trunk output at state tokens (..., D) -> predictions (..., K, A)."""
        return self.action_decoder(hidden).unflatten(-1, (self.cfg.horizon, self.cfg.action_dim))

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """tokens (B, T, 3, D) -> predictions at every step (B, T, K, A); with a cache, appended after it."""
        b, t = tokens.shape[:2]
        hidden = self.trunk(tokens.reshape(b, t * TOKENS_PER_STEP, -1), cache=cache)  # (B, 3T, D)
        return self.readout(hidden.view(b, t, TOKENS_PER_STEP, -1)[:, :, STATE_SLOT])  # (B, T, K, A)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over valid entries. pred, target (B, T, K, A); valid (B, T, K) bool (whole
    predicted steps) or (B, T, K, A) bool (single entries, e.g. points hidden at t or t+1)."""
    weights = (valid if valid.dim() == pred.dim() else valid.unsqueeze(-1)).to(pred.dtype)
    weights = weights.expand_as(pred)  # (B, T, K, A)
    # A batch whose targets all lie past episode ends contributes a zero loss (and zero gradients).
    return ((pred - target).abs() * weights).sum() / weights.sum().clamp(min=1.0)
