"""The real ARM4R policy (tiny preset) behind the websocket server: control chunks out, points policies refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from robo4d.methods.arm4r.config import preset
from robo4d.methods.base import build_policy
from robo4d.serve.client import PolicyClient
from robo4d.serve.protocol import IOSpec
from robo4d.serve.server import PolicyServer, ServerConfig
from robo4d.types import Observation

SPEC = IOSpec(cameras=("front", "wrist"), image_size=(64, 64), state_dim=8, action_kind="eef_pose", method="arm4r")


def obs() -> Observation:
    images = {cam: np.zeros((64, 64, 3), np.uint8) for cam in SPEC.cameras}
    return Observation(images=images, state=np.array([0, 0.6, 0.2, 1, 0, 0, 0, 1], np.float32), task="reach the goal")


@pytest.mark.parametrize("stage", [3, 1])
def test_arm4r_tiny_served(stage: int) -> None:
    template = build_policy("arm4r", preset("arm4r-tiny", stage)).eval()
    with PolicyServer(lambda: copy.deepcopy(template), SPEC, ServerConfig(port=0)).start_in_thread() as server:
        with PolicyClient(server.url) as client:
            if stage == 1:
                with pytest.raises(RuntimeError, match="predicts point motion"):
                    client.predict_action_chunk(obs())
                return
            chunk = client.predict_action_chunk(obs())
            assert chunk.kind == "eef_pose" and chunk.actions.shape == (16, 8) and np.isfinite(chunk.actions).all()
            client.reset()
            np.testing.assert_allclose(client.predict_action_chunk(obs()).actions, chunk.actions, atol=1e-5)
