"""IGOR's foundation policy (text + frames -> the next latent action) and its low-level head.

    foundation  text token (Linear E -> W) joins each frame's patch tokens; spatio-temporal blocks (causal over
                the H history frames); N readout queries over the newest frame's tokens -> (B, N, D) latent,
                trained by L2 to the LAM's label a_t (paper Eq. 4)
    low-level   "extra layers on top of the foundation policy" (paper, App. B.3): the foundation's newest-frame
                tokens (text included) and its predicted latent (Linear D -> W per token) pass through ViT
                blocks; one readout query -> tau future end-effector deltas (paper Eq. 5, L2)

In the control stage the foundation is frozen and the low-level head reads its *predicted* latent, exactly
as at inference, so training and deployment see the same inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from robo4d import types
from robo4d.methods.igor.blocks import Block, PatchEmbed, Readout, STBlock
from robo4d.methods.igor.config import IGORConfig


class FoundationPolicy(nn.Module):
    def __init__(self, cfg: IGORConfig) -> None:
        super().__init__()
        w = cfg.policy_dim
        self.embed = PatchEmbed(cfg.image_size, cfg.patch_size, w)
        self.text_proj = nn.Linear(cfg.text_dim, w)
        self.frame_pos = nn.Parameter(torch.randn(1, cfg.history, 1, w) * 0.02)  # (1, H, 1, W)
        self.blocks = nn.ModuleList(STBlock(w, cfg.policy_heads) for _ in range(cfg.policy_layers))
        self.readout = Readout(w, cfg.policy_heads, cfg.num_latents)
        self.to_code = nn.Linear(w, cfg.code_dim)

    def forward(self, frames: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (B, H, 3, S, S), text (B, E) -> (latent (B, N, D), newest-frame tokens (B, P+1, W))."""
        patches = self.embed(frames)  # (B, H, P, W)
        b, h = patches.shape[:2]
        text_tok = self.text_proj(text)[:, None, None].expand(b, h, 1, -1)  # (B, H, 1, W)
        x = torch.cat((text_tok, patches), dim=2) + self.frame_pos  # (B, H, P+1, W)
        for block in self.blocks:
            x = block(x)
        return self.to_code(self.readout(x[:, -1])), x[:, -1]


class LowLevelHead(nn.Module):
    def __init__(self, cfg: IGORConfig) -> None:
        super().__init__()
        w = cfg.policy_dim
        self.tau = cfg.tau
        self.from_code = nn.Linear(cfg.code_dim, w)
        self.latent_pos = nn.Parameter(torch.randn(1, cfg.num_latents, w) * 0.02)
        self.blocks = nn.ModuleList(Block(w, cfg.policy_heads) for _ in range(cfg.low_level_layers))
        self.readout = Readout(w, cfg.policy_heads, 1)
        self.head = nn.Linear(w, cfg.tau * types.STATE_DIM)

    def forward(self, tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """tokens (B, P+1, W) from the foundation, latent (B, N, D) -> (B, tau, 8) scaled eef-state deltas."""
        x = torch.cat((tokens, self.from_code(latent) + self.latent_pos), dim=1)  # (B, P+1+N, W)
        for block in self.blocks:
            x = block(x)
        return self.head(self.readout(x)[:, 0]).view(-1, self.tau, types.STATE_DIM)
