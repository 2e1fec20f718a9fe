"""IGOR's world model: rectified flow generating o_{t+k} from history frames and the latent action a_t.

Rectified flow (Liu et al., 2022): with x_0 ~ N(0, I) noise and x_1 the data, x_n = (1 - n) x_0 + n x_1
moves on a straight line at constant velocity x_1 - x_0; the network learns v(x_n, n | context) by MSE to
that velocity, and sampling integrates dx/dn = v from n = 0 to 1 with Euler steps.

The velocity network is a small ViT: per patch, the noisy frame's channels are stacked with the history
frames' channels (3 (H + 1) channels per pixel) and embedded together; N latent-action tokens and one
flow-time token join the patch tokens; bidirectional blocks; a linear head returns the velocity per patch.

The flow generates the change o_{t+k} - o_t (added to the newest history frame), not the frame itself: the
change is near zero almost everywhere, so the velocity is mostly "remove the noise", a function a small
network learns in a few hundred steps, while generating whole frames from noise needs far longer training.

Where robo4d differs from the paper, and why: the paper starts from Open-Sora and diffuses in a video VAE's
latent space; here the flow runs directly on 64 px pixels (no pretrained VAE to ship, CPU-trainable), on
frame changes (above), and generates one frame per latent action, so longer videos are rolled out frame by
frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robo4d.methods.igor.blocks import Block, Mlp, PatchEmbed
from robo4d.methods.igor.config import IGORConfig


def flow_pair(x1: torch.Tensor, x0: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The point x_n = (1 - n) x_0 + n x_1 and its velocity target x_1 - x_0. x0, x1 (B, ...); n (B,) in [0, 1]."""
    w = n.view(-1, *([1] * (x1.dim() - 1)))
    return (1 - w) * x0 + w * x1, x1 - x0


def flow_loss(velocity: torch.Tensor, x1: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """MSE between predicted velocities and the straight-line velocity x_1 - x_0."""
    return F.mse_loss(velocity, x1 - x0)


def time_embedding(n: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of flow times n (B,) in [0, 1] -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=n.device, dtype=torch.float32) / half)
    angles = 1000.0 * n.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class WorldModel(nn.Module):
    def __init__(self, cfg: IGORConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch, self.side = cfg.patch_size, cfg.image_size // cfg.patch_size
        self.embed = PatchEmbed(cfg.image_size, cfg.patch_size, cfg.world_dim, in_channels=3 * (cfg.history + 1))
        self.from_code = nn.Linear(cfg.code_dim, cfg.world_dim)
        self.latent_pos = nn.Parameter(torch.randn(1, cfg.num_latents, cfg.world_dim) * 0.02)
        self.time = nn.Sequential(nn.Linear(cfg.world_dim, cfg.world_dim), Mlp(cfg.world_dim, 1))
        self.blocks = nn.ModuleList(Block(cfg.world_dim, cfg.world_heads) for _ in range(cfg.world_layers))
        self.norm = nn.LayerNorm(cfg.world_dim)
        self.head = nn.Linear(cfg.world_dim, 3 * cfg.patch_size**2)

    def velocity(self, x: torch.Tensor, n: torch.Tensor, history: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """x (B, 3, S, S) at flow time n (B,); history (B, H, 3, S, S); latent (B, N, D) -> v (B, 3, S, S)."""
        stacked = torch.cat((x[:, None], history), dim=1).flatten(1, 2)[:, None]  # (B, 1, 3(H+1), S, S)
        patches = self.embed(stacked)[:, 0]  # (B, P, W)
        time = self.time(time_embedding(n, patches.shape[-1]))[:, None]  # (B, 1, W)
        h = torch.cat((patches, self.from_code(latent) + self.latent_pos, time), dim=1)  # (B, P+N+1, W)
        for block in self.blocks:
            h = block(h)
        out = self.head(self.norm(h[:, : patches.shape[1]]))  # (B, P, 3*p*p)
        b, p, s = out.shape[0], self.patch, self.side
        return out.view(b, s, s, 3, p, p).permute(0, 3, 1, 4, 2, 5).reshape_as(x)

    def loss(self, target: torch.Tensor, history: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Rectified-flow loss for generating `target` (B, 3, S, S) at uniformly drawn flow times."""
        x1 = target - history[:, -1]  # (B, 3, S, S) the change to generate
        x0 = torch.randn_like(x1)
        n = torch.rand(x1.shape[0], device=x1.device)
        xn, _ = flow_pair(x1, x0, n)
        return flow_loss(self.velocity(xn, n, history, latent), x1, x0)

    @torch.no_grad()
    def sample(
        self, history: torch.Tensor, latent: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Euler-integrate noise -> change, added to the newest frame: (B, H, 3, S, S), (B, N, D) -> (B, 3, S, S)
        clamped to [-1, 1]."""
        steps = self.cfg.sample_steps
        b, s = history.shape[0], self.cfg.image_size
        x = torch.randn(b, 3, s, s, generator=generator, device=history.device)
        for i in range(steps):
            n = torch.full((b,), i / steps, device=history.device)
            x = x + self.velocity(x, n, history, latent) / steps
        return (history[:, -1] + x).clamp(-1, 1)
