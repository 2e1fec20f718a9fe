"""The learned point tracker's network: joint refinement of many tracks from correlation features.

The design follows the published family of dense trackers trained on synthetic video with exact tracks:
PIPs (Harley et al., 2022: iterative refinement of a whole trajectory window from local correlations),
TAPIR (Doersch et al., 2023: per-point correlation with a query feature, occlusion prediction) and
CoTracker (Karaev et al., 2023/2024: tracks refined *jointly* by a transformer that attends over time within
each track and across tracks through a few learned "virtual" tokens, run over overlapping windows).
robo4d's version, sized for a CPU:
- a small convolutional encoder gives stride-4 features; the query feature is sampled once at the query pixel;
- a correlation volume of the query against every window frame is computed once per window and pooled into a
  pyramid (pooling the volume equals correlating with pooled features: both are linear), so each refinement
  iteration only samples (2r+1)^2 values per level around the current estimate;
- each (track, frame) token = [correlations, displacement from the window's first estimate, an "anchor" flag
  for frames whose estimate came from the previous window]; blocks alternate attention over time (per track)
  with a point-mixing step through M virtual tokens (per frame), costing O(N*M) rather than O(N^2);
- every iteration predicts a position update; the last also predicts a visibility logit.
Differences from the papers, and why: no track-feature update between iterations and a single query feature
per point (fewer parameters and FLOPs for a CPU budget); anchors are flagged explicitly instead of being fed
back as visibility/confidence, so the model learns which frames are already settled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True, kw_only=True)
class LearnedTrackerConfig:
    """Sizes of the tracker network and of its sliding window."""

    feature_dim: int = 64  # C: channels of the stride-4 feature map
    levels: int = 3  # correlation pyramid levels (strides 4, 8, 16)
    radius: int = 3  # (2r+1)^2 correlation samples per level around the estimate
    hidden: int = 64  # D: token width of the refinement transformer
    heads: int = 4  # attention heads
    blocks: int = 2  # (time attention, point mixing) pairs
    virtual: int = 16  # M: virtual tokens that carry information across tracks
    iters: int = 4  # refinement iterations per window
    window: int = 8  # S: frames per window
    overlap: int = 2  # frames shared by consecutive windows (their estimates seed the next window)
    short_side: int = 128  # frames are resized so their shorter side has this many pixels before tracking

    def __post_init__(self) -> None:
        for name in ("feature_dim", "levels", "radius", "hidden", "heads", "blocks", "virtual", "iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"LearnedTrackerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"LearnedTrackerConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.window < 2 or not 1 <= self.overlap < self.window:
            raise ValueError(
                f"LearnedTrackerConfig needs window >= 2 and 1 <= overlap < window, got {self.window}, {self.overlap}"
            )
        if self.short_side < 32:
            raise ValueError(f"LearnedTrackerConfig.short_side must be >= 32 pixels, got {self.short_side}")


STRIDE = 4  # encoder output stride, pixels
PATCH_CHANNELS = STRIDE * STRIDE  # fixed block-matching channels of the feature map


class _Residual(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm1 = nn.GroupNorm(8, dim)
        self.norm2 = nn.GroupNorm(8, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(x + self.norm2(self.conv2(y)))


class Encoder(nn.Module):
    """(B, 3, H, W) images in [0, 1] -> (B, C, H/4, W/4) features: C - 16 learned channels and 16 fixed ones.

    The fixed channels are each 4x4 grey-level cell, normalised to zero mean and unit norm: their correlation
    is block matching, a signal that works from the first training step (and on textures the learned channels
    never saw); the learned channels add invariance to light, blur and compression on top."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim <= PATCH_CHANNELS:
            raise ValueError(f"feature_dim must exceed the {PATCH_CHANNELS} fixed patch channels, got {dim}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 5, stride=2, padding=2), nn.GroupNorm(8, 32), nn.ReLU(),
            nn.Conv2d(32, 48, 3, stride=2, padding=1), nn.GroupNorm(8, 48), nn.ReLU(),
        )  # fmt: skip
        self.res = nn.Sequential(_Residual(48), _Residual(48))
        self.out = nn.Conv2d(48, dim - PATCH_CHANNELS, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grey = images.mean(1, keepdim=True)  # (B, 1, H, W)
        cells = F.pixel_unshuffle(grey, STRIDE)  # (B, 16, H/4, W/4)
        cells = cells - cells.mean(1, keepdim=True)
        cells = cells / (cells.norm(dim=1, keepdim=True) + 0.05) * PATCH_CHANNELS**0.5
        return torch.cat([self.out(self.res(self.stem(images * 2 - 1))), cells], 1)


def _attend(attn: nn.MultiheadAttention, query: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """`attn(query, kv, kv, need_weights=False)[0]` for batch-first (B, L, D) inputs, to float rounding, and faster
    on CPU: PyTorch's fused path rearranges the projected queries, keys and values in a slow separate step (as
    much time as the projection itself for the tracks' attention over 8 frames), which one projection and views
    avoid. Keys and values are projected together, and queries too when `query` is `kv` (self-attention)."""
    b, length, d = query.shape
    heads, w, bias = attn.num_heads, attn.in_proj_weight, attn.in_proj_bias
    if query is kv:
        q, k, v = F.linear(query, w, bias).view(b, length, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    else:
        q = F.linear(query, w[:d], bias[:d]).view(b, length, heads, d // heads).transpose(1, 2)
        k, v = F.linear(kv, w[d:], bias[d:]).view(b, kv.shape[1], 2, heads, d // heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, length, d)
    return attn.out_proj(out)


class _Block(nn.Module):
    """Attention over time within each track, then mixing across tracks through virtual tokens."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.time_norm = nn.LayerNorm(dim)
        self.time_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.gather_norm = nn.LayerNorm(dim)
        self.gather = nn.MultiheadAttention(dim, heads, batch_first=True)  # virtual <- tracks
        self.scatter_norm = nn.LayerNorm(dim)
        self.scatter = nn.MultiheadAttention(dim, heads, batch_first=True)  # tracks <- virtual
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, virtual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x (B, N, S, D) track tokens; virtual (B, S, M, D)
        b, n, s, d = x.shape
        h = self.time_norm(x).reshape(b * n, s, d)
        x = x + _attend(self.time_attn, h, h).reshape(b, n, s, d)
        per_frame = x.transpose(1, 2).reshape(b * s, n, d)  # (B*S, N, D)
        v = virtual.reshape(b * s, -1, d)
        v = v + _attend(self.gather, v, self.gather_norm(per_frame))
        per_frame = per_frame + _attend(self.scatter, per_frame, self.scatter_norm(v))
        x = per_frame.reshape(b, s, n, d).transpose(1, 2)
        x = x + self.mlp(self.mlp_norm(x))
        return x, v.reshape(b, s, -1, d)


class TrackerNet(nn.Module):
    """Refines a window of tracks: see the module docstring. Coordinates are pixels (continuous convention)."""

    def __init__(self, config: LearnedTrackerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = Encoder(c.feature_dim)
        taps = (2 * c.radius + 1) ** 2
        self.embed = nn.Linear(c.levels * taps + 2 * 8 + 1, c.hidden)
        self.time_embed = nn.Parameter(torch.zeros(c.window, c.hidden))
        self.virtual = nn.Parameter(torch.randn(c.virtual, c.hidden) * 0.02)
        self.blocks = nn.ModuleList(_Block(c.hidden, c.heads) for _ in range(c.blocks))
        self.head_norm = nn.LayerNorm(c.hidden)
        self.head = nn.Linear(c.hidden, 3)  # du, dv, visibility logit
        self.register_buffer("freqs", 2.0 ** torch.arange(4, dtype=torch.float32) / 32, persistent=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, C, H/4, W/4)."""
        return self.encoder(images.permute(0, 3, 1, 2).float() / 255.0)

    def query_features(self, fmap: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """fmap (B, C, h, w), queries (B, N, 2) pixels -> (B, N, C), bilinear at the query pixel."""
        grid = _to_grid(queries / STRIDE - 0.5, fmap.shape[-2:])[:, :, None]  # (B, N, 1, 2)
        return F.grid_sample(fmap, grid, align_corners=True).squeeze(-1).transpose(1, 2)

    def feature_levels(self, fmaps: torch.Tensor) -> list[torch.Tensor]:
        """(F, C, h, w) -> per pyramid level (F, C, h_l, w_l): the features average-pooled 2^l times."""
        levels = [fmaps]
        for _ in range(1, self.config.levels):
            levels.append(F.avg_pool2d(levels[-1], 2, ceil_mode=True))
        return levels

    @staticmethod
    def correlate(feats: torch.Tensor, qfeat: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """feats (F, C, h, w), qfeat (N, C) or per frame (F, N, C) -> (F, N, h, w) scaled dot products, written
        frame-major (into `out` when given), so the volume is never transposed."""
        f, c, h, w = feats.shape
        q = qfeat / c**0.5
        q = q.expand(f, -1, -1) if q.dim() == 2 else q  # (F, N, C)
        if out is None:
            return torch.bmm(q, feats.reshape(f, c, h * w)).reshape(f, -1, h, w)
        torch.bmm(q, feats.reshape(f, c, h * w), out=out.view(f, -1, h * w))
        return out

    def correlation_pyramid(self, fmaps: torch.Tensor, qfeat: torch.Tensor) -> list[torch.Tensor]:
        """fmaps (B, S, C, h, w), qfeat (B, N, C) -> per level (B*S*N, 1, h_l, w_l) correlations.

        Level l correlates with features average-pooled 2^l times: the same values as pooling the level-0
        volume (both are linear), for a fraction of the memory traffic."""
        b, s = fmaps.shape[:2]
        per_frame = qfeat[:, None].expand(b, s, *qfeat.shape[1:]).flatten(0, 1)  # (B*S, N, C)
        levels = self.feature_levels(fmaps.flatten(0, 1))  # (B*S, C, h_l, w_l)
        return [self.correlate(feats, per_frame).reshape(-1, 1, *feats.shape[-2:]) for feats in levels]

    def sample_correlations(self, pyramid: list[torch.Tensor], uv: torch.Tensor) -> torch.Tensor:
        """uv (B, S, N, 2) pixels -> (B, S, N, levels * K) correlations around each estimate."""
        b, s, n, _ = uv.shape
        out = []
        for lvl, corr in enumerate(pyramid):
            centre = uv.reshape(-1, 2) / (STRIDE * 2**lvl) - 0.5  # (B*S*N, 2) feature cells
            out.append(_window(corr, centre, self.config.radius).reshape(b, s, n, -1))
        return torch.cat(out, -1)

    def refine(
        self, pyramid: list[torch.Tensor], uv: torch.Tensor, anchored: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """uv (B, S, N, 2) initial estimates, anchored (B, S) bool (frames whose estimates are settled).

        Returns the estimates after each iteration (list of (B, S, N, 2)) and visibility logits (B, S, N)."""
        b, s, n, _ = uv.shape
        c = self.config
        flag = anchored[:, :, None, None].float().expand(b, s, n, 1)
        steps, logits = [], None
        for _ in range(c.iters):
            uv = uv.detach()  # each iteration learns a correction, not to steer its predecessors (RAFT, PIPs)
            corr = self.sample_correlations(pyramid, uv)  # (B, S, N, L*K)
            disp = (uv - uv[:, :1])[..., None] * self.freqs  # (B, S, N, 2, 4)
            motion = torch.cat([torch.sin(disp), torch.cos(disp)], -1).reshape(b, s, n, 16)
            x = self.embed(torch.cat([corr, motion, flag], -1)) + self.time_embed[:s, None]  # (B, S, N, D)
            x = x.transpose(1, 2)  # (B, N, S, D)
            virtual = self.virtual.expand(b, s, -1, -1)
            for block in self.blocks:
                x, virtual = block(x, virtual)
            out = self.head(self.head_norm(x)).transpose(1, 2)  # (B, S, N, 3)
            uv = uv + out[..., :2]
            logits = out[..., 2]
            steps.append(uv)
        return steps, logits

    def forward(
        self, frames: torch.Tensor, query_frame: torch.Tensor, queries: torch.Tensor, init: torch.Tensor,
        anchored: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:  # fmt: skip
        """One window, end to end (training). frames (B, S, H, W, 3) uint8, query_frame (B, H, W, 3) uint8,
        queries (B, N, 2), init (B, S, N, 2), anchored (B, S) -> as `refine`."""
        b, s = frames.shape[:2]
        fmaps = self.features(torch.cat([query_frame[:, None], frames], 1).flatten(0, 1))
        fmaps = fmaps.reshape(b, s + 1, *fmaps.shape[1:])  # (B, 1+S, C, h, w)
        qfeat = self.query_features(fmaps[:, 0], queries)
        return self.refine(self.correlation_pyramid(fmaps[:, 1:], qfeat), init, anchored)


def _to_grid(cells: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Feature-cell coordinates (x, y) -> grid_sample's [-1, 1] (align_corners=True: -1 and 1 are cell centres)."""
    h, w = size
    scale = cells.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    return cells * scale - 1.0


def _window(maps: torch.Tensor, centre: torch.Tensor, radius: int) -> torch.Tensor:
    """maps (M, 1, h, w), centre (M, 2) cells (x, y) -> (M, (2r+1)^2): each map bilinearly sampled on the integer
    lattice of offsets -r..r around its centre, zero outside the map, row-major (dy, dx).

    Equal to `grid_sample(align_corners=True, padding_mode="zeros")` at those points (to float rounding): every tap
    shares one pair of fractional weights, so one (2r+2)^2 gather and two lerps replace (2r+1)^2 bilinear lookups."""
    m, _, h, w = maps.shape
    corner = centre.floor()
    fx, fy = (centre - corner).unbind(-1)  # (M,) each
    taps = torch.arange(-radius, radius + 2, device=maps.device)  # 2r+2 integer rows/columns
    ix = corner[:, 0].long()[:, None] + taps  # (M, 2r+2)
    iy = corner[:, 1].long()[:, None] + taps
    index = (iy.clamp(0, h - 1) * w)[:, :, None] + ix.clamp(0, w - 1)[:, None, :]  # (M, 2r+2, 2r+2)
    patch = maps.reshape(m, h * w).gather(1, index.reshape(m, -1)).reshape(index.shape)
    # Zero outside the map: columns before the lerp along x, rows after it (rows are lerped independently there).
    patch = patch * ((ix >= 0) & (ix < w)).to(patch.dtype)[:, None, :]
    patch = torch.lerp(patch[:, :, :-1], patch[:, :, 1:], fx[:, None, None])  # (M, 2r+2, 2r+1)
    patch = patch * ((iy >= 0) & (iy < h)).to(patch.dtype)[:, :, None]
    patch = torch.lerp(patch[:, :-1], patch[:, 1:], fy[:, None, None])  # (M, 2r+1, 2r+1)
    return patch.reshape(m, -1)


def tracking_loss(
    steps: list[torch.Tensor], logits: torch.Tensor, target: torch.Tensor, visible: torch.Tensor,
    valid: torch.Tensor, *, gamma: float = 0.8, occluded_weight: float = 0.2,
) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
    """Iteration-weighted Huber loss on positions plus BCE on visibility.

    steps: per-iteration (B, S, N, 2); logits (B, S, N); target (B, S, N, 2) pixels; visible (B, S, N) bool;
    valid (B, S, N) bool (ground truth exists: in front of the camera). Occluded points still have an exact
    position and are supervised with a smaller weight, as in CoTracker, so tracks stay sensible behind occluders.
    """
    weight = valid.float() * torch.where(visible, 1.0, occluded_weight)  # (B, S, N)
    denom = weight.sum().clamp(min=1.0)
    loss = logits.new_zeros(())
    for k, uv in enumerate(steps):
        err = F.huber_loss(uv, target, reduction="none", delta=4.0).sum(-1)  # (B, S, N)
        loss = loss + gamma ** (len(steps) - 1 - k) * (err * weight).sum() / denom
    bce = F.binary_cross_entropy_with_logits(logits, visible.float(), reduction="none")
    vis_loss = (bce * valid.float()).sum() / valid.float().sum().clamp(min=1.0)
    dist = (steps[-1].detach() - target).norm(dim=-1)  # (B, S, N)
    seen = valid & visible
    metrics = {
        "epe_px": float((dist * seen).sum() / seen.sum().clamp(min=1)),
        "within_1px": float(((dist < 1) & seen).sum() / seen.sum().clamp(min=1)),
        "vis_acc": float((((logits.detach() > 0) == visible) & valid).sum() / valid.sum().clamp(min=1)),
    }
    return loss + vis_loss, metrics
