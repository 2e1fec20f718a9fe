"""From a policy's predicted chunks to one target per control step, for either kind of robot command.

A policy returns, at step t, an `ActionChunk` of K absolute targets for steps t .. t+K-1 (row 0 is what the
action taken at t should reach): end-effector poses (`types.ACTION_EEF_POSE`: xyz + quaternion wxyz + gripper)
or joint-space commands (`types.ACTION_JOINT`: the robot's own A-wide action vector). Two ways to turn chunks
into targets:

- "ensemble" (ACT's temporal ensembling, what ARM4R's release does): query the policy every step; the target
  for step t blends every still-valid prediction for t, made at steps t-K+1 .. t, with weights
  w_i = exp(-m * i), where i = 0 is the OLDEST prediction. So m > 0 favours older predictions (ACT's choice:
  smoother, slower to react), m < 0 favours the newest, m = 0 is a plain mean.
- "chunk": query once, execute `execute_steps` rows of the chunk open-loop, then query again.

Blending end-effector poses: positions and gripper by weighted mean; orientations by the weighted quaternion
average of Markley et al. (2007) — the principal eigenvector of sum_i w_i q_i q_i^T — which is the proper mean
rotation and is blind to the q / -q sign ambiguity (a naive component mean of q and -q would cancel to
nothing). The gripper is then binarised: opening >= threshold (0.4 in ARM4R's release) -> 1.0 (open), else 0.0
(closed). Joint-space rows pass through: a weighted mean per dimension when ensembling, the row itself in
chunk mode; their meaning (which dimension is a gripper, if any) is the robot's, so nothing is binarised.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from robo4d.types import ACTION_EEF_POSE, CONTROL_ACTION_KINDS, STATE_DIM, ActionChunk, ChunkPolicy, Observation


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    """How predicted chunks become per-step targets."""

    mode: Literal["ensemble", "chunk"] = "ensemble"  # temporal ensembling every step, or open-loop chunks
    ensemble_decay: float = 0.01  # m in w_i = exp(-m*i), i = 0 the oldest prediction (ACT's convention/default)
    execute_steps: int | None = None  # "chunk" mode: rows executed per query; None = the whole chunk
    gripper_threshold: float = 0.4  # eef_pose: opening >= this counts as open (ARM4R's release binarises at 0.4)

    def __post_init__(self) -> None:
        if self.mode not in ("ensemble", "chunk"):
            raise ValueError(f"RuntimeConfig.mode: expected 'ensemble' or 'chunk', got {self.mode!r}")
        if not np.isfinite(self.ensemble_decay):
            raise ValueError(f"RuntimeConfig.ensemble_decay: expected a finite number, got {self.ensemble_decay}")
        if self.execute_steps is not None and self.execute_steps < 1:
            raise ValueError(f"RuntimeConfig.execute_steps: expected >= 1 or None, got {self.execute_steps}")
        if not 0.0 < self.gripper_threshold < 1.0:
            raise ValueError(f"RuntimeConfig.gripper_threshold: expected in (0, 1), got {self.gripper_threshold}")


def quaternion_mean(quats: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean rotation of (N, 4) unit quaternions (wxyz); returns (4,) unit, w >= 0."""
    q = quats / np.linalg.norm(quats, axis=1, keepdims=True)  # (N, 4)
    m = np.einsum("n,ni,nj->ij", weights / weights.sum(), q, q)  # (4, 4) symmetric
    _, vecs = np.linalg.eigh(m)  # ascending eigenvalues
    mean = vecs[:, -1]
    return mean if mean[0] >= 0 else -mean  # one canonical sign so equal rotations give equal targets


def blend_targets(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, 8) eef targets + (N,) weights -> (8,) blended target (gripper left continuous)."""
    w = weights / weights.sum()
    out = np.empty(STATE_DIM, dtype=np.float64)
    out[:3] = w @ rows[:, :3]
    out[3:7] = quaternion_mean(rows[:, 3:7], w)
    out[7] = w @ rows[:, 7]
    return out


def check_chunk(chunk: ActionChunk, kind: str, width: int) -> np.ndarray:
    """The chunk's (K, width) rows, or a ValueError saying why this policy cannot drive the robot."""
    if chunk.kind != kind:
        raise ValueError(
            f"policy returned ActionChunk.kind={chunk.kind!r}; this runtime executes {kind!r} chunks "
            f"— is this a pre-training (e.g. points) checkpoint?"
        )
    actions = np.asarray(chunk.actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] != width:
        raise ValueError(f"ActionChunk.actions: expected (K, {width}) with K >= 1, got {actions.shape}")
    if not np.all(np.isfinite(actions)):
        raise ValueError("ActionChunk.actions: expected finite values, got NaN/inf")
    return actions


class TargetRuntime:
    """Per-episode state between a policy and the robot: call `reset()` per episode, `next_target()` per step.

    `action_kind`/`action_dim` are the policy's (`PolicyIO.action_kind`, `.action_dim`); eef_pose is 8 wide."""

    def __init__(self, config: RuntimeConfig, *, action_kind: str = ACTION_EEF_POSE, action_dim: int = STATE_DIM):
        if action_kind not in CONTROL_ACTION_KINDS:
            raise ValueError(f"TargetRuntime: {action_kind!r} is not a robot command {CONTROL_ACTION_KINDS}")
        if action_dim < 1 or (action_kind == ACTION_EEF_POSE and action_dim != STATE_DIM):
            raise ValueError(f"TargetRuntime: {action_kind!r} actions cannot be {action_dim} wide")
        self.config = config
        self.action_kind = action_kind
        self.action_dim = action_dim
        self._pending: deque[tuple[int, np.ndarray]] = deque()  # (step the chunk was predicted at, (K, A) rows)
        self._step = 0
        self.queries = 0  # policy calls this episode (for reporting)

    def reset(self) -> None:
        self._pending.clear()
        self._step = 0
        self.queries = 0

    def next_target(self, obs: Observation, policy: ChunkPolicy) -> np.ndarray:
        """(A,) target for the current step. eef_pose: xyz, unit quat wxyz, gripper in {0.0 closed, 1.0 open}."""
        t = self._step
        self._step += 1
        # Drop chunks with no row left for step t (ensemble) or that have been executed (chunk mode).
        while self._pending and not self._covers(*self._pending[0], t):
            self._pending.popleft()
        if self.config.mode == "ensemble" or not self._pending:
            chunk = policy.predict_action_chunk(obs)
            self._pending.append((t, check_chunk(chunk, self.action_kind, self.action_dim)))
            self.queries += 1
        eef = self.action_kind == ACTION_EEF_POSE
        if self.config.mode == "chunk":
            start, rows = self._pending[-1]
            target = rows[t - start].copy()
        else:
            rows_for_t = np.stack([rows[t - start] for start, rows in self._pending])  # (N, A), oldest first
            weights = np.exp(-self.config.ensemble_decay * np.arange(len(rows_for_t)))  # (N,)
            target = blend_targets(rows_for_t, weights) if eef else (weights / weights.sum()) @ rows_for_t  # (A,)
        if eef:
            target[3:7] = quaternion_mean(target[None, 3:7], np.ones(1))  # unit norm even for a single raw row
            target[7] = 1.0 if target[7] >= self.config.gripper_threshold else 0.0
        return target

    def _covers(self, start: int, rows: np.ndarray, t: int) -> bool:
        limit = len(rows)
        if self.config.mode == "chunk" and self.config.execute_steps is not None:
            limit = min(limit, self.config.execute_steps)
        return t - start < limit
