"""Vector quantisation with one shared codebook, a straight-through estimator, and measured codebook health.

Codebook collapse (a few codes take every input, the rest never train) is the known failure of latent
action models, so usage is measured, not hoped for:
- the codebook starts from the encoder: the first training forward copies randomly drawn encoder outputs
  into it (randomly initialised codes far from every output would start collapsed, all inputs on one code);
- every forward in training updates a per-code usage EMA (`usage`, a buffer saved with the weights);
- `health()` gives the batch's perplexity (exp of the entropy of code usage; |C| when uniform, 1 when
  collapsed), the number of codes used in the batch, the number of dead codes and the usage histogram;
- dead-code restart: every `restart_every` training forwards, each code whose usage EMA has fallen below
  `dead_usage / |C|` is re-seeded from a randomly drawn encoder output of the current batch (plus noise of
  1% of that batch's spread), and its EMA is reset to uniform so it gets a fair chance before the next check.
  Re-seeding from live encoder outputs puts the code where inputs actually are, so it wins some of them at
  once (the remedy of Dhariwal et al.'s Jukebox and of peer latent-action models). Adam's moments for a
  re-seeded code are left as they are: they are small after the code received no gradient for a while.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Quantized:
    quantized: torch.Tensor  # (..., D) straight-through: forward = the code vector, backward = identity to z_e
    codes: torch.Tensor  # (...) int64 code indices
    loss: torch.Tensor  # () codebook + beta * commitment
    restarted: int  # codes re-seeded by this forward


class VectorQuantizer(nn.Module):
    def __init__(
        self, num_codes: int, dim: int, *, commitment: float, restart_every: int, dead_usage: float, decay: float
    ) -> None:
        super().__init__()
        self.num_codes, self.commitment = num_codes, commitment
        self.restart_every, self.dead_usage, self.decay = restart_every, dead_usage, decay
        self.codebook = nn.Parameter(torch.randn(num_codes, dim) * dim**-0.5)  # (C, D)
        self.register_buffer("usage", torch.full((num_codes,), 1.0 / num_codes))  # (C,) EMA share of assignments
        self.register_buffer("forwards", torch.zeros((), dtype=torch.int64))  # training forwards so far

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (...) index of the closest code (L2)."""
        flat = z.reshape(-1, z.shape[-1]).float()  # (M, D)
        codes = self.codebook.float()  # (C, D)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.t() + codes.pow(2).sum(1)  # (M, C)
        return dist.argmin(1).view(z.shape[:-1])  # (...)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(...) int64 -> (..., D) code vectors."""
        return self.codebook[codes]

    def forward(self, z: torch.Tensor) -> Quantized:
        """z: (..., D) encoder outputs."""
        if self.training and int(self.forwards) == 0:
            self.seed_codes(torch.arange(self.num_codes, device=z.device), z.detach().reshape(-1, z.shape[-1]))
        codes = self.nearest(z.detach())  # (...)
        e = self.codebook[codes]  # (..., D)
        loss = F.mse_loss(e, z.detach()) + self.commitment * F.mse_loss(z, e.detach())
        restarted = 0
        if self.training:
            with torch.no_grad():
                counts = torch.bincount(codes.flatten(), minlength=self.num_codes).float()  # (C,)
                self.usage.mul_(self.decay).add_((1 - self.decay) * counts / counts.sum())
                self.forwards += 1
                if self.restart_every and int(self.forwards) % self.restart_every == 0:
                    restarted = self.restart_dead(z.detach().reshape(-1, z.shape[-1]))
        quantized = z + (e - z).detach()  # straight-through: d quantized / d z = identity
        return Quantized(quantized=quantized, codes=codes, loss=loss, restarted=restarted)

    def dead_codes(self) -> torch.Tensor:
        """(C,) bool: usage EMA below dead_usage of uniform usage."""
        return self.usage < self.dead_usage / self.num_codes

    @torch.no_grad()
    def restart_dead(self, recent: torch.Tensor) -> int:
        """Re-seed dead codes from rows of `recent` (M, D) encoder outputs; returns how many were restarted."""
        dead = torch.nonzero(self.dead_codes()).flatten()
        if dead.numel():
            self.seed_codes(dead, recent)
        return int(dead.numel())

    @torch.no_grad()
    def seed_codes(self, which: torch.Tensor, recent: torch.Tensor) -> None:
        """Set codes `which` to randomly drawn rows of `recent` (M, D) plus 1% of their spread as noise, and
        give them uniform usage."""
        pick = torch.randint(0, recent.shape[0], (which.numel(),), device=recent.device)
        noise = torch.randn_like(recent[pick]) * 0.01 * recent.std(0, keepdim=True)
        self.codebook.data[which] = (recent[pick] + noise).to(self.codebook.dtype)
        self.usage[which] = 1.0 / self.num_codes

    def health(self, codes: torch.Tensor) -> dict[str, float]:
        """Batch perplexity and codes used, dead codes (usage EMA) and the EMA usage histogram as metrics."""
        counts = torch.bincount(codes.flatten(), minlength=self.num_codes).float()
        p = counts / counts.sum()
        entropy = -(p * p.clamp(min=1e-12).log()).sum()
        metrics = {
            "perplexity": float(entropy.exp()),
            "codes_used": float((counts > 0).sum()),
            "dead_codes": float(self.dead_codes().sum()),
        }
        metrics |= {f"code_usage.{i:02d}": float(u) for i, u in enumerate(self.usage.tolist())}
        return metrics
