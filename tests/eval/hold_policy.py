"""A test-only policy that asks to stay where it is (importable by spawned workers)."""

from __future__ import annotations

import numpy as np

from robo4d.types import ActionChunk, Observation


class HoldPolicy:
    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        return ActionChunk(actions=np.repeat(obs.state[None].astype(np.float32), 4, axis=0), kind="eef_pose")

    def reset(self) -> None:
        pass
