"""Step-wise GR-1 inference: a bounded history of `seq_len` steps, no frame ever encoded twice.

Each step's input tokens (language, state, resampled patches + global token per camera; the frozen encoder
and the resampler run once per new frame) are kept for the last `seq_len` steps. Only the ACT query is run:
no token attends to a query, so leaving the OBS queries out changes no other output.

While the history is shorter than the window, step t has timestep index t and its tokens are appended after a
key/value cache of the earlier steps' input tokens (query keys are never cached): the result equals one
forward over steps 0..t. Once the window is full the oldest step leaves and every remaining step's timestep
index shifts by one, which changes every cached key, so the trunk re-runs over the stored tokens of the last
`seq_len` steps (no encoder, resampler or input projection re-runs): every output equals a forward over the
window, exactly as in training. The release instead re-encodes all ten frames through its ViT at every step.
"""

from __future__ import annotations

from collections import deque

import torch

from robo4d.methods.gr1.model import GR1Model
from robo4d.nn.transformer import KVCache


class StepwiseRunner:
    """Feed one step's input tokens at a time; `step` returns the ACT output of that step."""

    def __init__(self, model: GR1Model, window: int) -> None:
        self.model = model
        self.window = window  # T: steps of history (the training window)
        self.reset()

    def reset(self) -> None:
        self.steps: deque[torch.Tensor] = deque(maxlen=self.window)  # per step (B, n_in, D) input tokens
        self.seen = 0  # steps fed since the reset
        self.cache = KVCache()

    @torch.no_grad()
    def step(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (B, n_in, D) of the new step -> ACT output (B, D)."""
        self.steps.append(inputs)
        self.seen += 1
        if self.seen <= self.window:
            hidden = self.model(inputs[:, None], obs=False, start=self.seen - 1, cache=self.cache)  # (B, 1, n, D)
        else:
            self.cache = KVCache()  # no longer a prefix of any window
            hidden = self.model(torch.stack(tuple(self.steps), dim=1), obs=False)  # (B, T, n, D)
        return hidden[:, -1, self.model.num_inputs]
