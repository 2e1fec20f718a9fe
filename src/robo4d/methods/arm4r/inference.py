"""Step-wise decoding with a key/value cache and a bounded context of `seq_len` steps.

While fewer than `seq_len` steps have been seen, each step appends its new tokens to the cache: the previous
step's action token (now known), then the step's language and state tokens. The result equals one
full-sequence forward over all steps so far.

Once the window is full the oldest step must leave. Rotary positions are relative, but dropping the oldest
keys is still not exact: deeper layers' cached keys and values of the kept steps were computed while
attending to the dropped step. So the kept window is re-encoded from its stored step tokens (one trunk pass
over 3T - 1 tokens; the frozen encoders and input MLPs never re-run). The per-step cost is then constant in
the episode length and every output equals a full forward over the last `seq_len` steps, as in training.
Only the state token's readout is needed, so the final block runs attention and feed-forward for that one
row (`last_only`; the same values up to float rounding).
The release instead lets the context (and latency) grow without bound, beyond the 16-step windows it
trained on. `exact=False` offers a rolling cache instead: the oldest step's keys and values are evicted
and nothing is re-encoded (cost of a growing cache at a fixed length), at the price of outputs that drift
from the exact window's (benchmarks/runtime.py measures how far).
"""

from __future__ import annotations

from collections import deque

import torch

from robo4d.methods.arm4r.model import STATE_SLOT, TOKENS_PER_STEP, ARM4RModel
from robo4d.nn.transformer import KVCache


class StepwiseDecoder:
    """Feeds one step at a time; `step` returns the readout at that step's state token."""

    def __init__(self, model: ARM4RModel, window: int, *, exact: bool = True) -> None:
        self.model = model
        self.window = window  # T: steps of context, the training window length
        self.exact = exact  # False: rolling cache (evict, never re-encode), approximate once the window is full
        self.reset()

    def reset(self) -> None:
        self.steps: deque[list[torch.Tensor]] = deque()  # per step [language, state(, action)] tokens, each (B, D)
        self.cache = KVCache()

    @torch.no_grad()
    def step(self, language: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor | None) -> torch.Tensor:
        """language, state: (B, D) tokens of this step; prev_action: (B, D) action token of the previous
        step (None at the first step) -> predictions (B, K, A)."""
        if self.steps:
            if prev_action is None:
                raise ValueError("StepwiseDecoder.step: prev_action is required after the first step")
            self.steps[-1].append(prev_action)
        elif prev_action is not None:
            raise ValueError("StepwiseDecoder.step: the first step of an episode has no previous action")
        self.steps.append([language, state])
        new = ([] if prev_action is None else [prev_action]) + [language, state]
        if len(self.steps) > self.window:
            dropped = self.steps.popleft()
            if not self.exact:
                self.cache.drop_oldest(len(dropped))
                hidden = self.model.trunk(torch.stack(new, dim=1), cache=self.cache, last_only=True)  # (B, 1, D)
                return self.model.readout(hidden[:, -1])  # (B, K, A)
            self.cache = KVCache()  # no longer a prefix of any future context
            window = torch.stack([tok for step in self.steps for tok in step], dim=1)  # (B, 3T-1, D)
            hidden = self.model.trunk(window, last_only=True)  # (B, 1, D) re-encoded from position 0, as in training
        else:
            hidden = self.model.trunk(torch.stack(new, dim=1), cache=self.cache)  # (B, 2 or 3, D)
        return self.model.readout(hidden[:, -1])  # (B, K, A)


def full_sequence_readout(model: ARM4RModel, tokens: torch.Tensor) -> torch.Tensor:
    """Reference for tests and the naive baseline: tokens (B, T, 3, D) -> readout at the last state (B, K, A)."""
    b, t = tokens.shape[:2]
    hidden = model.trunk(tokens.reshape(b, t * TOKENS_PER_STEP, -1)[:, : (t - 1) * TOKENS_PER_STEP + STATE_SLOT + 1])
    return model.readout(hidden[:, -1])
