"""The real ARM4R policy (tiny preset) behind the websocket server: control chunks out, points policies refused."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest

from robo4d.eval.policy_source import require_control
from robo4d.methods.arm4r.config import preset
from robo4d.methods.base import build_policy
from robo4d.serve.client import PolicyClient
from robo4d.serve.protocol import IOSpec
from robo4d.serve.server import PolicyServer, ServerConfig
from robo4d.types import ACTION_EEF_POSE, Observation


def obs(cameras: tuple[str, ...]) -> Observation:
    images = {cam: np.zeros((64, 64, 3), np.uint8) for cam in cameras}
    return Observation(images=images, state=np.array([0, 0.6, 0.2, 1, 0, 0, 0, 1], np.float32), task="reach the goal")


def test_arm4r_tiny_control_served_as_its_io_declares() -> None:
    template = build_policy("arm4r", preset("arm4r-tiny", 3)).eval()
    io = replace(template.io(), image_size=(64, 64))  # the frozen encoder resizes whatever the robot sends
    spec = IOSpec(io=io, method="arm4r")
    with PolicyServer(lambda: copy.deepcopy(template), spec, ServerConfig(port=0)).start_in_thread() as server:
        with PolicyClient(server.url) as client:
            assert client.spec == spec
            chunk = client.predict_action_chunk(obs(io.cameras))
            assert chunk.kind == ACTION_EEF_POSE and chunk.actions.shape == (io.chunk, 8)
            assert np.isfinite(chunk.actions).all()
            client.reset()
            np.testing.assert_allclose(client.predict_action_chunk(obs(io.cameras)).actions, chunk.actions, atol=1e-5)


def test_arm4r_points_stage_is_refused_before_serving() -> None:
    io = build_policy("arm4r", preset("arm4r-tiny", 1)).io()
    with pytest.raises(ValueError, match="'arm4r' 'points' pre-training policy.*not robot commands"):
        require_control(io, "arm4r", "stage1")
