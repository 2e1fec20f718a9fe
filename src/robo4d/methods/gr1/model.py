"""GR-1's trainable network and losses (modules only; batches live in policy.py, step-wise decoding in
inference.py).

Paper: H. Wu, Y. Jing, C. Cheang, et al., "Unleashing Large-Scale Video Generative Pre-training for Visual
Robot Manipulation", ICLR 2024 (arXiv 2312.13139); authors' code: github.com/bytedance/GR-1 (model and
CALVIN evaluation only; no training code).

Tokens of one step (D wide), inputs first, then the learned query tokens:
    language    embed_lang(L2-normalised frozen sentence embedding)                     1
    state       embed_state([embed_arm_state(xyz, rotvec), embed_gripper_state(one-hot)]) 1  (finetune)
    per camera  embed_patch[i](resampler(frozen patch tokens)), embed_img[i](global token) K + 1
    ACT         action_queries                                                           1  (finetune)
    OBS         obs_queries[i], one set per camera                                       K + 1 each (video loss)
Release sizes: K = 9 and 43 tokens per step (23 without OBS queries). The learned per-timestep embedding
(index within the window) is added to every input token of its step; the query tokens get none (as the
release), and there are no other positions. Then `embed_ln` and the GPT-2 trunk under a causal mask in which
no token attends to a query token: readouts never feed each other or later steps, and queries can be left
out of a forward without changing any other output (inference asks for ACT only).

Readouts: ACT -> MLP D -> D/2 -> D/2 -> arm (K_a x 6) and gripper (K_a logits). Each camera's OBS outputs ->
`decoder_embed` -> with N mask tokens (+ fixed 2-D sin-cos positions) -> 2 ViT blocks -> norm -> Linear to
p*p*3 pixels per patch; the mask-token outputs are the predicted frame.

Where robo4d differs from the authors' code, and why:
- The frozen encoders are not part of this module: tokens arrive pre-computed (a feature cache during
  training; once per new frame at inference).
- The action MLP has a ReLU after each hidden Linear (`action_mlp_activation`): the release stacks two
  Linears with nothing between them, which collapses to one linear map. Set it False to run release weights.
- The release's GPT-2 keeps a 1-token word embedding (`transformer.wte`, 384 values) that nothing reads; it
  is not built here (the import names it as ignored).
- Loss masks: steps whose target frame or action lies past the episode end do not count.
- The future frame is the one `offset` steps ahead (the paper); the released code targets the current frame.

Choices the paper leaves open (robo4d's answer; the module that holds it):
- Actions per step: K_a = `chunk`, default 1 as the release (one action per step, re-predicted every step);
  the runtime accepts any K >= 1 and ensembles overlapping chunks. Relative pose targets composed onto the
  observed pose into absolute `ACTION_EEF_POSE` rows, gripper as P(open) (actions.py).
- State: xyz + rotation vector (the release: Euler angles) and a one-hot gripper at `gripper_threshold`.
- Loss weights: video, arm and gripper all 1 (the training code is not public; config fields).
- Target pixels: [0, 1] RGB resized to `frame_size`, per-patch normalised (MAE's norm_pix_loss; the release
  normalises ImageNet-standardised pixels, which per-patch normalisation makes nearly the same).
- Tiny preset: EfficientNet-Lite0's 4 x 4 feature map (320 channels at 128 px) stands in for the ViT's 196
  patch tokens and its mean for the CLS token (`global_token="mean"`); MiniLM for CLIP text.
- Pre-training trains camera slot 0 only (ego video); fine-tuning maps it to the static camera `front` and
  initialises the wrist slot, as the release pre-trains its static-camera projections only (recipes.py).
- Initialisation: GPT-2's (normal 0.02, residual projections scaled by 1/sqrt(2L)) everywhere except the
  resampler, whose latents start standard-normal as Flamingo's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robo4d.methods.gr1.config import ARM_DIM, GRIPPER_STATE_DIM, GR1Config
from robo4d.nn.transformer import KVCache

LN_EPS = 1e-5  # torch's LayerNorm default, which every LayerNorm of the release uses


# ------------------------------------------------------------------------------------- Perceiver resampler
class PerceiverAttention(nn.Module):
    """Latents attend to [media, latents] (Flamingo's variant); pre-LN on both, no biases."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm_media = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm_latents = nn.LayerNorm(dim, eps=LN_EPS)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """media (M, L, C), latents (M, K, C) -> (M, K, C)."""
        media, latents = self.norm_media(media), self.norm_latents(latents)
        m, k, _ = latents.shape
        q = self.to_q(latents).view(m, k, self.heads, -1).transpose(1, 2)  # (M, h, K, e)
        kv = self.to_kv(torch.cat((media, latents), dim=1))  # (M, L+K, 2he)
        key, value = kv.view(m, kv.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)  # 2 x (M, h, L+K, e)
        out = F.scaled_dot_product_attention(q, key, value)  # (M, h, K, e)
        return self.to_out(out.transpose(1, 2).reshape(m, k, -1))


def _resampler_ffn(dim: int) -> nn.Sequential:
    """LayerNorm -> Linear 4x (no bias) -> GELU -> Linear (no bias), indexed 0..3 like the release."""
    hidden = 4 * dim
    return nn.Sequential(
        nn.LayerNorm(dim, eps=LN_EPS), nn.Linear(dim, hidden, bias=False), nn.GELU(), nn.Linear(hidden, dim, bias=False)
    )


class PerceiverResampler(nn.Module):
    """(M, L, C) patch tokens -> (M, K, C): K learned latents refined by `depth` attention + FFN layers."""

    def __init__(self, dim: int, *, depth: int, heads: int, dim_head: int, num_latents: int) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim))
        self.media_pos_emb = nn.Parameter(torch.randn(1, 1, dim))  # one "media" slot: a single frame
        self.layers = nn.ModuleList(
            nn.ModuleList((PerceiverAttention(dim, heads, dim_head), _resampler_ffn(dim))) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, media: torch.Tensor) -> torch.Tensor:
        media = media + self.media_pos_emb  # (M, L, C)
        latents = self.latents.expand(media.shape[0], -1, -1)  # (M, K, C)
        for attn, ffn in self.layers:  # type: ignore[misc]
            latents = latents + attn(media, latents)
            latents = latents + ffn(latents)
        return self.norm(latents)


# ------------------------------------------------------------------------------------------- GPT-2 trunk
class GPT2Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, S, D); allowed (S, L+S) bool; past: cached (B, h, L, e) keys and values."""
        b, s, d = x.shape
        q, k, v = self.c_attn(x).view(b, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # 3 x (B, h, S, e)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)  # (B, h, L+S, e)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)  # (B, h, S, e)
        return self.resid_dropout(self.c_proj(out.transpose(1, 2).reshape(b, s, d))), (k, v)


class GPT2MLP(nn.Module):
    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.c_proj = nn.Linear(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.relu(self.c_fc(x))))  # ReLU: the release's activation_function


class GPT2Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = GPT2Attention(dim, heads, dropout)
        self.ln_2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = GPT2MLP(dim, dropout)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attn, kv = self.attn(self.ln_1(x), allowed, past)
        x = x + attn
        return x + self.mlp(self.ln_2(x)), kv


def query_free_mask(is_query: torch.Tensor, cached: int) -> torch.Tensor:
    """(S, L+S) bool: new token i (after L cached non-query tokens) sees every cached token and the new tokens
    j <= i that are not queries. is_query: (S,) bool over the new tokens."""
    s = is_query.shape[0]
    causal = torch.ones(s, s, dtype=torch.bool, device=is_query.device).tril()  # (S, S)
    new = causal & ~is_query[None, :]
    return torch.cat((new.new_ones(s, cached), new), dim=1)


class GPT2Trunk(nn.Module):
    """Pre-LN GPT-2 without position embeddings. With a cache, the new tokens follow the cached ones, and only
    the keys/values of new non-query tokens are appended (no token ever reads a query's)."""

    def __init__(self, dim: int, n_layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(GPT2Block(dim, heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor, is_query: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """x (B, S, D), is_query (S,) bool -> (B, S, D)."""
        cached = 0 if cache is None else cache.length
        allowed = query_free_mask(is_query, cached)  # (S, L+S)
        x = self.drop(x)
        for i, block in enumerate(self.h):
            past = (cache.keys[i], cache.values[i]) if cache is not None and cached else None
            x, (k, v) = block(x, allowed, past)
            if cache is not None:
                keep = torch.cat((torch.ones(cached, dtype=torch.bool, device=x.device), ~is_query))  # (L+S,)
                k, v = k[:, :, keep], v[:, :, keep]
                if i < len(cache.keys):
                    cache.keys[i], cache.values[i] = k, v
                else:
                    cache.keys.append(k)
                    cache.values.append(v)
        return self.ln_f(x)


# ----------------------------------------------------------------------------------------- frame decoder
def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """(grid*grid, dim) fixed positions, MAE's layout: patches row-major; the first dim/2 channels encode the
    column, the rest the row; each half is [sin, cos] over frequencies 10000^(-i / (dim/4))."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))  # (dim/4,)
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")

    def axis(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.flatten().double()[:, None] * omega[None]  # (G*G, dim/4)
        return torch.cat((angles.sin(), angles.cos()), dim=1)

    return torch.cat((axis(cols), axis(rows)), dim=1).float()


class DecoderBlock(nn.Module):
    """A pre-LN ViT block (GELU MLP, ratio 4, qkv with biases)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = nn.ModuleDict({"qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(dim, dim)})
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = nn.ModuleDict({"fc1": nn.Linear(dim, 4 * dim), "fc2": nn.Linear(4 * dim, dim)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.attn["qkv"](self.norm1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        x = x + self.attn["proj"](F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp["fc2"](F.gelu(self.mlp["fc1"](self.norm2(x))))


class FrameDecoder(nn.Module):
    """OBS outputs (M, K+1, D) -> predicted patches of the future frame (M, N, p*p*3)."""

    def __init__(self, cfg: GR1Config) -> None:
        super().__init__()
        d = cfg.dim
        self.decoder_embed = nn.Linear(d, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder_blocks = nn.ModuleList(DecoderBlock(d, cfg.decoder_heads) for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.decoder_pred = nn.Linear(d, cfg.patch_dim)
        # Fixed, so code rather than weights: not in the state dict (an imported file's copy is checked).
        grid = cfg.frame_size // cfg.patch_size
        self.register_buffer("pos_embed", sincos_2d(d, grid)[None], persistent=False)  # (1, N, D)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        m, n_obs, _ = obs.shape
        masks = (self.mask_token + self.pos_embed).expand(m, -1, -1)  # (M, N, D)
        x = torch.cat((self.decoder_embed(obs), masks), dim=1)  # (M, K+1+N, D)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, n_obs:]  # (M, N, p*p*3)


class ActionHead(nn.Module):
    """ACT output (..., D) -> arm deltas (..., K, 6) and gripper-open logits (..., K)."""

    def __init__(self, cfg: GR1Config) -> None:
        super().__init__()
        half = cfg.dim // 2
        self.chunk, self.activation = cfg.chunk, cfg.action_mlp_activation
        self.mlp = nn.ModuleList((nn.Linear(cfg.dim, half), nn.Linear(half, half)))
        self.arm = nn.Linear(half, ARM_DIM * cfg.chunk)
        self.gripper = nn.Linear(half, cfg.chunk)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.mlp:
            x = F.relu(layer(x)) if self.activation else layer(x)
        return self.arm(x).unflatten(-1, (self.chunk, ARM_DIM)), self.gripper(x)


# ------------------------------------------------------------------------------------------------ GR-1
class GR1Model(nn.Module):
    def __init__(self, cfg: GR1Config) -> None:
        super().__init__()
        self.cfg = cfg
        d, slots, k = cfg.dim, len(cfg.cameras), cfg.resampler_latents
        self.trunk = GPT2Trunk(d, cfg.n_layers, cfg.n_heads, cfg.dropout)
        self.resampler = PerceiverResampler(
            cfg.image_dim,
            depth=cfg.resampler_depth,
            heads=cfg.resampler_heads,
            dim_head=cfg.resampler_dim_head,
            num_latents=k,
        )
        self.embed_lang = nn.Linear(cfg.text_dim, d)
        self.embed_timestep = nn.Embedding(cfg.seq_len, d)
        self.embed_ln = nn.LayerNorm(d, eps=LN_EPS)
        self.embed_img = nn.ModuleList(nn.Linear(cfg.image_dim, d) for _ in range(slots))  # global token
        self.embed_patch = nn.ModuleList(nn.Linear(cfg.image_dim, d) for _ in range(slots))  # resampled patches
        if cfg.predicts_actions:
            self.embed_arm_state = nn.Linear(ARM_DIM, d)
            self.embed_gripper_state = nn.Linear(GRIPPER_STATE_DIM, d)
            self.embed_state = nn.Linear(2 * d, d)
            self.action_queries = nn.Embedding(1, d)
            self.action_head = ActionHead(cfg)
        if cfg.video_loss:
            self.obs_queries = nn.ModuleList(nn.Embedding(k + 1, d) for _ in range(slots))
            self.decoder = FrameDecoder(cfg)
        initialise(self)

    # --------------------------------------------------------------------------------------- input tokens
    @property
    def num_inputs(self) -> int:
        """Input tokens per step: language (+ state) + (K + 1) per camera."""
        return 1 + self.cfg.predicts_actions + len(self.cfg.cameras) * (self.cfg.resampler_latents + 1)

    def frame_tokens(self, slot: int, tokens: torch.Tensor) -> torch.Tensor:
        """Frozen encoder tokens (..., L, C) of camera slot `slot` -> (..., K+1, D): resampled patches, global."""
        lead = tokens.shape[:-2]
        tokens = tokens.reshape(-1, *tokens.shape[-2:])  # (M, L, C)
        if self.cfg.global_token == "first":
            glob, patches = tokens[:, 0], tokens[:, 1:]
        else:
            glob, patches = tokens.mean(dim=1), tokens
        out = torch.cat((self.embed_patch[slot](self.resampler(patches)), self.embed_img[slot](glob)[:, None]), 1)
        return out.reshape(*lead, *out.shape[-2:])

    def lang_token(self, text: torch.Tensor) -> torch.Tensor:
        """(..., E) frozen sentence embedding -> (..., D), L2-normalised first as the release."""
        return self.embed_lang(text / (text.norm(dim=-1, keepdim=True) + 1e-6))

    def state_token(self, arm: torch.Tensor, gripper: torch.Tensor) -> torch.Tensor:
        """arm (..., 6), gripper one-hot (..., 2) -> (..., D)."""
        return self.embed_state(torch.cat((self.embed_arm_state(arm), self.embed_gripper_state(gripper)), dim=-1))

    def step_inputs(self, lang: torch.Tensor, frames: list[torch.Tensor], state: torch.Tensor | None) -> torch.Tensor:
        """lang (B, D); frames: per slot (B, T, K+1, D); state (B, T, D) or None -> (B, T, n_in, D)."""
        b, t = frames[0].shape[:2]
        parts = [lang[:, None, None].expand(b, t, 1, -1)]
        if self.cfg.predicts_actions:
            if state is None:
                raise ValueError("GR1Model.step_inputs: the finetune stage needs state tokens")
            parts.append(state[:, :, None])
        return torch.cat(parts + frames, dim=2)

    # -------------------------------------------------------------------------------------------- trunk
    def query_tokens(self, obs: bool) -> torch.Tensor:
        """(n_q, D): [ACT] (finetune), then each camera's K+1 OBS queries when `obs`."""
        parts = [self.action_queries.weight] if self.cfg.predicts_actions else []
        if obs:
            parts += [q.weight for q in self.obs_queries]
        return torch.cat(parts) if parts else self.embed_ln.weight.new_zeros(0, self.cfg.dim)

    def forward(self, inputs: torch.Tensor, *, obs: bool, start: int = 0, cache: KVCache | None = None) -> torch.Tensor:
        """inputs (B, T, n_in, D) of steps start .. start+T-1 of the window -> trunk outputs (B, T, n_in + n_q, D).
        With `obs` the OBS queries are appended (training); without, only ACT (inference)."""
        b, t, n_in, d = inputs.shape
        x = inputs + self.embed_timestep.weight[start : start + t][None, :, None]  # (B, T, n_in, D)
        queries = self.query_tokens(obs)  # (n_q, D)
        x = torch.cat((x, queries.expand(b, t, -1, -1)), dim=2)  # (B, T, n, D)
        is_query = torch.zeros(x.shape[2], dtype=torch.bool, device=x.device)
        is_query[n_in:] = True
        hidden = self.trunk(self.embed_ln(x.reshape(b, -1, d)), is_query.repeat(t), cache)  # (B, T*n, D)
        return hidden.view(b, t, -1, d)

    def predict_actions(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Trunk outputs (B, T, n, D) -> arm (B, T, K, 6), gripper logits (B, T, K)."""
        return self.action_head(hidden[:, :, self.num_inputs])

    def predict_frames(self, hidden: torch.Tensor, slot: int) -> torch.Tensor:
        """Trunk outputs (B, T, n, D) with OBS queries -> camera slot's future frame (B, T, N, p*p*3)."""
        k1 = self.cfg.resampler_latents + 1
        start = self.num_inputs + self.cfg.predicts_actions + slot * k1
        obs = hidden[:, :, start : start + k1]  # (B, T, K+1, D)
        return self.decoder(obs.flatten(0, 1)).unflatten(0, obs.shape[:2])


# ------------------------------------------------------------------------------------------------ losses
def normalise_patches(pixels: torch.Tensor) -> torch.Tensor:
    """(..., N, P) pixels -> per-patch standardised targets: (x - mean) / (unbiased std + 1e-6), as MAE's
    norm_pix_loss and the release."""
    mean = pixels.mean(dim=-1, keepdim=True)
    std = pixels.var(dim=-1, unbiased=True, keepdim=True).sqrt()
    return (pixels - mean) / (std + 1e-6)


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of values (B, T, ...) over the entries whose leading (B, T) or (B, T, K) is valid; a batch with
    nothing valid gives a zero (still differentiable) loss."""
    weights = valid.to(values.dtype).reshape(*valid.shape, *[1] * (values.dim() - valid.dim())).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def frame_loss(pred: torch.Tensor, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """pred, pixels (B, T, N, P); valid (B, T) -> MSE against the per-patch normalised pixels."""
    return masked_mean((pred - normalise_patches(pixels)).pow(2), valid)


def action_losses(
    arm: torch.Tensor, gripper: torch.Tensor, arm_target: torch.Tensor, open_target: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """arm, arm_target (B, T, K, 6); gripper logits, open_target (B, T, K); valid (B, T, K) ->
    (Smooth-L1 of the arm, BCE of the gripper)."""
    arm_loss = masked_mean(F.smooth_l1_loss(arm, arm_target, reduction="none"), valid)
    grip = F.binary_cross_entropy_with_logits(gripper, open_target.to(gripper.dtype), reduction="none")
    return arm_loss, masked_mean(grip, valid)


def count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def initialise(model: GR1Model) -> None:
    """GPT-2's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorms; residual projections
    scaled by 1/sqrt(2 * n_layers). The resampler keeps its own (standard-normal latents)."""
    for name, module in model.named_modules():
        if name.startswith("resampler"):
            continue
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
    for block in model.trunk.h:
        for proj in (block.attn.c_proj, block.mlp.c_proj):
            nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * model.cfg.n_layers))
