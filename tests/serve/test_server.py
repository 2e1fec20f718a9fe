"""The websocket server against real clients on 127.0.0.1: protocol, auth, health, and bad clients."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from websockets.sync.client import connect

from robo4d.serve import protocol as proto
from robo4d.serve.client import PolicyClient
from robo4d.serve.msgpack_numpy import packb, unpackb
from robo4d.serve.server import PolicyServer, ServerConfig
from robo4d.types import (
    ACTION_EEF_POSE,
    STATE,
    STATE_EEF_POSE,
    STATE_NONE,
    TASK,
    ActionChunk,
    Observation,
    PolicyIO,
    image_key,
)

IO = PolicyIO(
    cameras=("front", "wrist"), image_size=(8, 10), state_kind=STATE_EEF_POSE, state_dim=8,
    action_kind=ACTION_EEF_POSE, action_dim=8, chunk=4,
)  # fmt: skip
SPEC = proto.IOSpec(io=IO, method="fake")


class CountingPolicy:
    """Deterministic fake: row k of the chunk is state + (calls since reset) + k, so context leaks show."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s

    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        if obs.task == "explode":
            raise ValueError("boom")
        time.sleep(self.delay_s)
        self.calls += 1
        rows = obs.state[None] + self.calls + np.arange(4, dtype=np.float32)[:, None]
        return ActionChunk(actions=rows.astype(np.float32), kind="eef_pose")

    def reset(self) -> None:
        self.calls = 0


def make_obs(task: str = "reach", size: tuple[int, int] = (8, 10)) -> Observation:
    images = {cam: np.zeros((*size, 3), np.uint8) for cam in IO.cameras}
    return Observation(images=images, state=np.zeros(8, np.float32), task=task)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    config = ServerConfig(port=0, max_message_bytes=64 * 1024, max_connections=6, inference_threads=2)
    with PolicyServer(lambda: CountingPolicy(delay_s=0.05), SPEC, config).start_in_thread() as bg:
        yield bg.url


def test_metadata_then_chunks_with_timing_and_per_connection_state(server: str) -> None:
    with PolicyClient(server) as a, PolicyClient(server) as b:
        assert a.spec == SPEC
        assert a.predict_action_chunk(make_obs()).actions[0, 0] == 1
        assert a.predict_action_chunk(make_obs()).actions[0, 0] == 2
        assert b.predict_action_chunk(make_obs()).actions[0, 0] == 1  # b's policy is its own
        assert a.last_server_timing["infer_ms"] >= 40 and a.last_server_timing["total_ms"] >= 40
        a.reset()
        chunk = a.predict_action_chunk(make_obs())
        assert chunk.kind == "eef_pose" and chunk.actions.shape == (4, 8) and chunk.actions[0, 0] == 1
    with PolicyClient(server) as again:  # a new connection starts from a fresh context
        assert again.predict_action_chunk(make_obs()).actions[0, 0] == 1


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda f: f.pop(image_key("wrist")), "missing camera image 'observation.images.wrist'.*\\(8, 10, 3\\)"),
        (lambda f: f.__setitem__(image_key("front"), np.zeros((9, 10, 3), np.uint8)), "front.*\\(8, 10, 3\\) uint8"),
        (lambda f: f.__setitem__(image_key("front"), np.zeros((8, 10, 3), np.float32)), "front.*got float32"),
        (lambda f: f.__setitem__(STATE, np.zeros(7, np.float32)), "observation.state.*\\(8,\\) float"),
        (lambda f: f.__setitem__(STATE, np.full(8, np.nan, np.float32)), "finite"),
        (lambda f: f.__setitem__("extra", 1), "unexpected key\\(s\\) \\['extra'\\]"),
        (lambda f: f.__setitem__(TASK, 3), "'task'.*string"),
        (lambda f: f.__setitem__(TASK, "explode"), "policy raised ValueError: boom"),
    ],
)
def test_bad_observations_get_an_error_frame_and_the_connection_lives(server: str, mutate, match: str) -> None:
    with PolicyClient(server) as client:
        frame = proto.observation_to_frame(make_obs(), SPEC)
        mutate(frame)
        with pytest.raises(RuntimeError, match=match):
            client.infer(frame)
        assert client.predict_action_chunk(make_obs()).actions.shape == (4, 8)


def test_malformed_frames_get_error_frames(server: str) -> None:
    with connect(server, proxy=None) as ws:
        proto.IOSpec.from_metadata(unpackb(ws.recv(timeout=5)))
        for bad, match in [(b"\xc1\xc1garbage", "malformed"), ("text", "text frame"), (packb([1, 2]), "map")]:
            ws.send(bad)
            assert match in unpackb(ws.recv(timeout=5))[proto.ERROR]
        ws.send(packb(proto.observation_to_frame(make_obs(), SPEC)))
        assert proto.ACTIONS in unpackb(ws.recv(timeout=5))


def test_oversize_frame_closes_only_that_connection(server: str) -> None:
    with PolicyClient(server) as victim, PolicyClient(server) as bystander:
        with pytest.raises(ConnectionError, match="closed"):
            victim.predict_action_chunk(make_obs(size=(200, 200)))
        assert bystander.predict_action_chunk(make_obs()).actions.shape == (4, 8)


def test_client_vanishing_mid_request_does_not_hurt_others(server: str) -> None:
    with connect(server, proxy=None) as ws:
        ws.recv(timeout=5)
        ws.send(packb(proto.observation_to_frame(make_obs(), SPEC)))
    # closed before the 50 ms inference finished
    with PolicyClient(server) as client:
        assert client.predict_action_chunk(make_obs()).actions.shape == (4, 8)


def test_concurrent_clients_are_served_in_parallel(server: str) -> None:
    results: dict[int, list[float]] = {}

    def episode(i: int) -> None:
        with PolicyClient(server) as client:
            results[i] = [float(client.predict_action_chunk(make_obs()).actions[0, 0]) for _ in range(4)]

    start = time.perf_counter()
    threads = [threading.Thread(target=episode, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    elapsed = time.perf_counter() - start
    assert results == {i: [1.0, 2.0, 3.0, 4.0] for i in range(4)}
    assert elapsed < 16 * 0.05 * 0.9  # two inference threads: faster than running all 16 calls one by one


def test_health_endpoint_is_plain_http(server: str) -> None:
    with urllib.request.urlopen(server.replace("ws://", "http://") + proto.HEALTH_PATH, timeout=5) as r:
        assert r.status == 200 and r.read() == b"ok\n"


def test_connections_beyond_the_limit_are_closed() -> None:
    config = ServerConfig(port=0, max_connections=1)
    with PolicyServer(CountingPolicy, SPEC, config).start_in_thread() as bg, PolicyClient(bg.url):
        with pytest.raises(ConnectionError, match="busy"):
            PolicyClient(bg.url)


def test_api_key_is_checked_at_the_handshake() -> None:
    with PolicyServer(CountingPolicy, SPEC, ServerConfig(port=0, api_key="s3cret")).start_in_thread() as bg:
        for key in (None, "wrong"):
            with pytest.raises(ConnectionError, match="HTTP 401.*api-key"):
                PolicyClient(bg.url, api_key=key)
        with PolicyClient(bg.url, api_key="s3cret") as client:
            assert client.predict_action_chunk(make_obs()).actions.shape == (4, 8)
        with urllib.request.urlopen(bg.url.replace("ws://", "http://") + proto.HEALTH_PATH, timeout=5) as r:
            assert r.status == 200


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="ServerConfig.port"):
        ServerConfig(port=70000)
    with pytest.raises(ValueError, match="IOSpec.camera_map wrist=ego: the policy has no camera 'ego'"):
        proto.IOSpec(io=IO, camera_map={"wrist": "ego"})
    with pytest.raises(ValueError, match="metadata frame: expected a PolicyIO map"):
        proto.IOSpec.from_metadata({**SPEC.to_metadata(), "state_dim": None} | {"extra": 1})


def test_port_in_use_is_a_clear_error() -> None:
    with PolicyServer(CountingPolicy, SPEC, ServerConfig(port=0)).start_in_thread() as bg:
        with pytest.raises(RuntimeError, match=f"failed to listen on 127.0.0.1:{bg.port}"):
            PolicyServer(CountingPolicy, SPEC, ServerConfig(port=bg.port)).start_in_thread()


def test_replies_must_match_the_declared_io_and_stateless_policies_take_no_state() -> None:
    class Short(CountingPolicy):
        def predict_action_chunk(self, obs: Observation) -> ActionChunk:
            assert obs.state.shape == (0,)  # STATE_NONE: the observation carries an empty state
            return ActionChunk(actions=np.zeros((2, 8), np.float32), kind=ACTION_EEF_POSE)

    spec = proto.IOSpec(io=replace(IO, state_kind=STATE_NONE, state_dim=0))
    with PolicyServer(Short, spec, ServerConfig(port=0)).start_in_thread() as bg, PolicyClient(bg.url) as client:
        frame = proto.observation_to_frame(make_obs(), spec)
        assert STATE not in frame
        with pytest.raises(RuntimeError, match=r"shape \(2, 8\).*declares finite 'eef_pose' chunks of \(4, 8\)"):
            client.infer(frame)
        with pytest.raises(RuntimeError, match=r"unexpected key\(s\) \['observation.state'\]"):
            client.infer({**frame, STATE: np.zeros(8, np.float32)})
