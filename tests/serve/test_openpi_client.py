"""`robo4d serve` driven by the released openpi client (`openpi-client` 0.1.2, a dev dependency), on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from test_server import SPEC, CountingPolicy
from websockets.exceptions import InvalidStatus

from robo4d.serve import protocol as proto
from robo4d.serve.server import PolicyServer, ServerConfig
from robo4d.types import STATE, TASK, image_key

KEY = "s3cret"
# openpi 0.1.2 opens its connection without a context manager; newer websockets warn about that form.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with PolicyServer(CountingPolicy, SPEC, ServerConfig(port=0, api_key=KEY)).start_in_thread() as bg:
        yield bg.url


def openpi_obs(state: float = 0.0) -> dict:
    """An observation the way an openpi robot script builds it: arrays, numpy scalars and a `prompt`."""
    obs: dict = {image_key(cam): np.zeros((8, 10, 3), np.uint8) for cam in SPEC.io.cameras}
    obs[STATE] = np.full(8, state, np.float32)
    obs["prompt"] = "reach the button"
    return obs


def test_connect_metadata_infer_reset(url: str) -> None:
    client = WebsocketClientPolicy(url, api_key=KEY)
    meta = client.get_server_metadata()
    assert meta["cameras"] == list(SPEC.io.cameras) and meta["state_dim"] == 8 and meta["action_kind"] == "eef_pose"
    first = client.infer(openpi_obs(state=0.5))
    assert first[proto.ACTIONS].dtype == np.float32 and first[proto.ACTIONS].shape == (4, 8)
    np.testing.assert_array_equal(first[proto.ACTIONS][:, 0], 0.5 + 1 + np.arange(4))  # state + call 1 + row
    assert first[proto.KIND] == "eef_pose" and first[proto.SERVER_TIMING]["infer_ms"] >= 0
    assert client.infer(openpi_obs())[proto.ACTIONS][0, 0] == 2  # the connection keeps its context
    client.reset()  # openpi 0.1.2's reset is client-side only: the server context is untouched
    assert client.infer(openpi_obs())[proto.ACTIONS][0, 0] == 3
    assert client.infer({proto.RESET: True}) == {proto.RESET: True}
    assert client.infer(openpi_obs())[proto.ACTIONS][0, 0] == 1


def test_wrong_key_is_refused_at_the_handshake(url: str) -> None:
    for key in (None, "wrong"):
        with pytest.raises(InvalidStatus, match="401"):
            WebsocketClientPolicy(url, api_key=key)


def test_bad_frame_is_answered_and_the_connection_lives(url: str) -> None:
    client = WebsocketClientPolicy(url, api_key=KEY)
    bad = openpi_obs()
    bad[image_key("front")] = np.zeros((8, 10, 3), np.float32)
    assert "front" in client.infer(bad)[proto.ERROR]
    both = openpi_obs() | {TASK: "reach"}
    assert "both 'task' and 'prompt'" in client.infer(both)[proto.ERROR]
    assert client.infer(openpi_obs())[proto.ACTIONS].shape == (4, 8)
