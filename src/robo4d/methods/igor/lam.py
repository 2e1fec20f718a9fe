"""IGOR's latent action model: inverse dynamics (IDM) -> vector quantisation -> forward dynamics (FDM).

Paper: X. Chen et al., "IGOR: Image-GOal Representations are the Atomic Control Units for Foundation
Models in Embodied AI", 2024 (arXiv 2411.00785); no official code.

    IDM  c1[o_t], c1[o_{t+k}] -> pixel patch embedding + frame embedding -> spatio-temporal blocks (causal over
         frames) -> N readout queries over the goal frame's tokens -> Linear -> z_e (B, N, D)
    VQ   z_e -> nearest of |C| shared codes (straight-through) -> a_t (B, N, D) + codebook/commitment loss
    FDM  single-frame ViT over [patches of c2[o_t]; N latent tokens] -> per-patch pixels of c2[o_{t+k}], MSE

c1 and c2 are independent random crops (one per sample, shared by the sample's two frames), so the latent
must describe the change semantically rather than by pixel position. Without crops (labelling, inference)
the IDM sees the full frames.

Where robo4d differs from the paper, and why:
- Learned pixel patch features instead of frozen DINOv2 (see blocks.py), trained end to end with the IDM.
- The IDM sees exactly the pair (o_t, o_{t+k}) rather than the whole history o_{1:t+k}: a latent then depends
  only on its own frame pair, so labelling any frame of any video needs no context, and the causal temporal
  attention still orders the two frames.
- The FDM adds its output to c2[o_t] (it predicts the change): the same function class, but the tiny CPU
  model does not spend its first thousand steps learning to copy the input frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robo4d.methods.igor.blocks import Block, PatchEmbed, Readout, STBlock, random_crops
from robo4d.methods.igor.config import IGORConfig
from robo4d.methods.igor.vq import VectorQuantizer


@dataclass(frozen=True)
class LatentAction:
    quantized: torch.Tensor  # (B, N, D) a_t: the code vectors (straight-through in training)
    continuous: torch.Tensor  # (B, N, D) z_e: the IDM's output before quantisation
    codes: torch.Tensor  # (B, N) int64
    vq_loss: torch.Tensor  # ()
    restarted: int  # dead codes re-seeded by this forward


class InverseDynamics(nn.Module):
    def __init__(self, cfg: IGORConfig) -> None:
        super().__init__()
        self.embed = PatchEmbed(cfg.image_size, cfg.patch_size, cfg.lam_dim)
        self.frame_pos = nn.Parameter(torch.randn(1, 2, 1, cfg.lam_dim) * 0.02)  # (1, F=2, 1, D)
        self.blocks = nn.ModuleList(STBlock(cfg.lam_dim, cfg.lam_heads) for _ in range(cfg.idm_layers))
        self.readout = Readout(cfg.lam_dim, cfg.lam_heads, cfg.num_latents)
        self.to_code = nn.Linear(cfg.lam_dim, cfg.code_dim)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        """pair (B, 2, 3, S, S): (o_t, o_{t+k}) -> z_e (B, N, D)."""
        x = self.embed(pair) + self.frame_pos  # (B, 2, P, D)
        for block in self.blocks:
            x = block(x)
        return self.to_code(self.readout(x[:, -1]))  # the goal frame's tokens have seen o_t (causal in time)


class ForwardDynamics(nn.Module):
    def __init__(self, cfg: IGORConfig) -> None:
        super().__init__()
        self.patch, self.side = cfg.patch_size, cfg.image_size // cfg.patch_size
        self.embed = PatchEmbed(cfg.image_size, cfg.patch_size, cfg.lam_dim)
        self.from_code = nn.Linear(cfg.code_dim, cfg.lam_dim)
        self.latent_pos = nn.Parameter(torch.randn(1, cfg.num_latents, cfg.lam_dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.lam_dim, cfg.lam_heads) for _ in range(cfg.fdm_layers))
        self.norm = nn.LayerNorm(cfg.lam_dim)
        self.to_pixels = nn.Linear(cfg.lam_dim, 3 * cfg.patch_size**2)

    def forward(self, frame: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """frame (B, 3, S, S) o_t, latent (B, N, D) a_t -> predicted o_{t+k} (B, 3, S, S)."""
        patches = self.embed(frame[:, None])[:, 0]  # (B, P, D)
        x = torch.cat((patches, self.from_code(latent) + self.latent_pos), dim=1)  # (B, P+N, D)
        for block in self.blocks:
            x = block(x)
        out = self.to_pixels(self.norm(x[:, : patches.shape[1]]))  # (B, P, 3*p*p)
        b, p, s = out.shape[0], self.patch, self.side
        delta = out.view(b, s, s, 3, p, p).permute(0, 3, 1, 4, 2, 5).reshape_as(frame)  # (B, 3, S, S)
        return frame + delta


class LatentActionModel(nn.Module):
    def __init__(self, cfg: IGORConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.idm = InverseDynamics(cfg)
        self.vq = VectorQuantizer(
            cfg.codebook_size, cfg.code_dim, commitment=cfg.commitment, restart_every=cfg.restart_every,
            dead_usage=cfg.dead_usage, decay=cfg.usage_decay,
        )  # fmt: skip
        self.fdm = ForwardDynamics(cfg)

    def encode(self, pair: torch.Tensor) -> LatentAction:
        """pair (B, 2, 3, S, S) pixels in [-1, 1] -> the quantised latent action of o_t -> o_{t+k}."""
        z = self.idm(pair)  # (B, N, D)
        q = self.vq(z)
        return LatentAction(q.quantized, z, q.codes, q.loss, q.restarted)

    def loss(self, pair: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Reconstruction of c2[o_{t+k}] from c2[o_t] and the latent of c1[pair], plus the VQ loss."""
        scale = self.cfg.crop_scale
        latent = self.encode(random_crops(pair, scale, generator))
        target_pair = random_crops(pair, scale, generator)  # (B, 2, 3, S, S): c2 for both o_t and o_{t+k}
        pred = self.fdm(target_pair[:, 0], latent.quantized)
        recon = F.mse_loss(pred, target_pair[:, 1])
        # The "copy o_t" baseline: how much of the frame changed at all (the recon must fall below it).
        still = F.mse_loss(target_pair[:, 0], target_pair[:, 1])
        metrics = {"recon": float(recon.detach()), "vq": float(latent.vq_loss.detach()), "copy_baseline":
                   float(still), "restarted": float(latent.restarted)} | self.vq.health(latent.codes)  # fmt: skip
        return recon + latent.vq_loss, metrics
