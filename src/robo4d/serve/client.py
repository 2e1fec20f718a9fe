"""Robot-side client for `robo4d serve`: needs only numpy, msgpack and websockets (no torch).

    with PolicyClient("ws://127.0.0.1:8000") as policy:
        print(policy.spec.io)                      # types.PolicyIO: cameras, image size, state and action kinds
        print(policy.spec.robot_cameras)           # the camera names to send (the server's camera map applied)
        chunk = policy.predict_action_chunk(obs)   # robo4d.types.Observation -> ActionChunk
        policy.reset()                             # new episode

`infer(frame)` is the raw openpi-style call (observation map in, reply map with `server_timing` out).
A `PolicyClient` has `predict_action_chunk` and `reset`, so evaluation drives it like a local policy.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from robo4d.serve import protocol as proto
from robo4d.serve.msgpack_numpy import packb, unpackb
from robo4d.types import ActionChunk, Observation


class PolicyClient:
    """One websocket session with a policy server (one episode context on the server side)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        open_timeout_s: float = 30.0,
        reply_timeout_s: float = 120.0,
        max_message_bytes: int = 64 * 2**20,
    ) -> None:
        headers = {proto.AUTH_HEADER: proto.auth_value(api_key)} if api_key else None
        self._url = url
        self._reply_timeout_s = reply_timeout_s
        # Entered as a context manager: the form every websockets version accepts without a warning.
        self._stack = ExitStack()
        try:
            self._ws: ClientConnection = self._stack.enter_context(
                connect(
                    url,
                    additional_headers=headers,
                    compression=None,
                    max_size=max_message_bytes,
                    open_timeout=open_timeout_s,
                    proxy=None,  # robot and server talk directly; an environment proxy would only get in the way
                )
            )
        except InvalidStatus as e:
            status = e.response.status_code
            hint = " (wrong or missing --api-key?)" if status == 401 else ""
            raise ConnectionError(f"policy server at {url} refused the handshake with HTTP {status}{hint}") from e
        except (OSError, InvalidHandshake, TimeoutError) as e:
            raise ConnectionError(f"cannot connect to policy server at {url}: {e}") from e
        self.spec = proto.IOSpec.from_metadata(self._receive(open_timeout_s))
        self.last_server_timing: dict[str, float] = {}

    def _receive(self, timeout_s: float) -> Any:
        try:
            return unpackb(self._ws.recv(timeout=timeout_s))
        except ConnectionClosed as e:
            raise ConnectionError(f"policy server at {self._url} closed the connection: {e}") from e
        except TimeoutError as e:
            raise TimeoutError(f"policy server at {self._url} sent no reply within {timeout_s} s") from e

    def infer(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send one observation map, return the server's reply map (raises RuntimeError on an error frame)."""
        try:
            self._ws.send(packb(frame))
        except ConnectionClosed as e:
            raise ConnectionError(f"policy server at {self._url} closed the connection: {e}") from e
        reply = self._receive(self._reply_timeout_s)
        if isinstance(reply, dict) and proto.ERROR in reply:
            raise RuntimeError(f"policy server refused the request: {reply[proto.ERROR]}")
        return reply

    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        reply = self.infer(proto.observation_to_frame(obs, self.spec))
        self.last_server_timing = dict(reply.get(proto.SERVER_TIMING, {}))
        return proto.frame_to_chunk(reply)

    def reset(self) -> None:
        """Start a new episode: the server resets this connection's policy context."""
        reply = self.infer({proto.RESET: True})
        if reply != {proto.RESET: True}:
            raise RuntimeError(f"policy server: expected {{{proto.RESET!r}: True}} after a reset, got {reply!r}")

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
