"""Websocket policy server: one policy instance per connection, inference off the event loop.

Why per-connection policies: a policy keeps its episode context (e.g. ARM4R's KV cache) between calls, so two
robots sharing one instance would corrupt each other's context. Each connection gets a fresh policy from
`make_policy` (the serve command deep-copies one loaded template) and resets it on connect and on `{reset}`.
Why a thread executor: `predict_action_chunk` is blocking torch code; run on the event loop it would stall
every other connection's I/O (pings included). `inference_threads` bounds how many run at once.

The server never dies from a client: undecodable frames, wrong keys/shapes/dtypes and policy exceptions become
error frames on that connection; frames over `max_message_bytes` close that connection (code 1009); a client
that vanishes mid-request only loses its own reply.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Request, Response, Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from robo4d.serve import protocol as proto
from robo4d.serve.msgpack_numpy import CodecError, packb, unpackb
from robo4d.types import ChunkPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Where and how to listen."""

    host: str = "127.0.0.1"  # loopback by default: exposing a robot policy must be a deliberate choice
    port: int = 8000  # 0 picks a free port (read it back from `BackgroundServer.port`)
    api_key: str | None = None  # when set, the handshake must carry "Authorization: Api-Key <key>" (else 401)
    max_message_bytes: int = 16 * 2**20  # larger client frames close the connection (websocket code 1009)
    max_connections: int = 4  # each holds its own policy copy in memory; extra clients are closed with 1013
    inference_threads: int = 1  # policy calls running at once (torch already uses all cores for one call)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("ServerConfig.host: expected an interface address such as '127.0.0.1'")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"ServerConfig.port: expected 0..65535, got {self.port}")
        if self.api_key is not None and (not self.api_key or any(c.isspace() for c in self.api_key)):
            raise ValueError("ServerConfig.api_key: expected a non-empty key without whitespace, or None")
        if self.max_message_bytes < 1024:
            raise ValueError(f"ServerConfig.max_message_bytes: expected >= 1024, got {self.max_message_bytes}")
        if self.max_connections < 1:
            raise ValueError(f"ServerConfig.max_connections: expected >= 1, got {self.max_connections}")
        if self.inference_threads < 1:
            raise ValueError(f"ServerConfig.inference_threads: expected >= 1, got {self.inference_threads}")


class PolicyServer:
    """Serves `make_policy()` instances validated against `spec`. Use `serve_forever()` or `start_in_thread()`."""

    def __init__(self, make_policy: Callable[[], ChunkPolicy], spec: proto.IOSpec, config: ServerConfig) -> None:
        self._make_policy = make_policy
        self._spec = spec
        self._config = config
        self._metadata = packb(spec.to_metadata())
        self._executor = ThreadPoolExecutor(config.inference_threads, thread_name_prefix="robo4d-infer")
        self._connections = 0  # only touched on the event loop thread

    @property
    def config(self) -> ServerConfig:
        return self._config

    # -- handshake -------------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == proto.HEALTH_PATH:  # unauthenticated on purpose: load balancers and probes carry no key
            return connection.respond(HTTPStatus.OK, "ok\n")
        if self._config.api_key is not None:
            given = request.headers.get(proto.AUTH_HEADER, "")
            expected = proto.auth_value(self._config.api_key)
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return connection.respond(
                    HTTPStatus.UNAUTHORIZED, f"expected header {proto.AUTH_HEADER}: {proto.auth_value('<key>')}\n"
                )
        return None

    # -- one connection ----------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        if self._connections >= self._config.max_connections:
            await ws.close(CloseCode.TRY_AGAIN_LATER, f"server busy: {self._config.max_connections} clients connected")
            return
        self._connections += 1
        loop = asyncio.get_running_loop()
        try:
            policy = await loop.run_in_executor(self._executor, self._fresh_policy)
            await ws.send(self._metadata)
            async for message in ws:
                reply = await self._answer(policy, message, loop)
                await ws.send(packb(reply))
        except ConnectionClosed:
            pass  # the client went away (possibly mid-request); its reply is simply dropped
        finally:
            self._connections -= 1

    def _fresh_policy(self) -> ChunkPolicy:
        policy = self._make_policy()
        policy.reset()
        return policy

    async def _answer(self, policy: ChunkPolicy, message: str | bytes, loop: asyncio.AbstractEventLoop) -> dict:
        start = time.perf_counter()
        if isinstance(message, str):
            return {proto.ERROR: "expected a binary msgpack frame, got a text frame"}
        try:
            frame = unpackb(message)
        except CodecError as e:
            return {proto.ERROR: str(e)}
        if isinstance(frame, dict) and frame.get(proto.RESET) is True:
            await loop.run_in_executor(self._executor, policy.reset)
            return {proto.RESET: True}
        try:
            obs = proto.frame_to_observation(frame, self._spec)
        except ValueError as e:
            return {proto.ERROR: str(e)}
        infer_start = time.perf_counter()
        try:
            chunk = await loop.run_in_executor(self._executor, policy.predict_action_chunk, obs)
            proto.check_reply(chunk, self._spec.io)
        except Exception as e:  # a policy bug must not take the server (or other clients) down
            log.exception("policy failed on a request")
            return {proto.ERROR: f"policy raised {type(e).__name__}: {e}"}
        infer_ms = (time.perf_counter() - infer_start) * 1e3
        return proto.chunk_to_frame(chunk, {"infer_ms": infer_ms, "total_ms": (time.perf_counter() - start) * 1e3})

    # -- running -----------------------------------------------------------------------------------
    def _serve(self) -> Any:
        return serve(
            self._handle,
            self._config.host,
            self._config.port,
            process_request=self._process_request,
            max_size=self._config.max_message_bytes,
            compression=None,  # images are already dense; deflate would only cost CPU on both ends
        )

    async def serve_forever(self) -> None:
        async with self._serve() as server:
            log.info("serving on %s", ", ".join(str(s.getsockname()) for s in server.sockets))
            await server.serve_forever()

    def start_in_thread(self) -> BackgroundServer:
        """Run the server on its own event loop in a daemon thread (tests, in-process evaluation)."""
        return BackgroundServer(self)


class BackgroundServer:
    """A `PolicyServer` listening in a background thread; `close()` (or the context manager) stops it."""

    def __init__(self, server: PolicyServer) -> None:
        self._owner = server
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._server: Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="robo4d-serve", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._server is None:
            cfg = server.config
            raise RuntimeError(
                f"policy server failed to listen on {cfg.host}:{cfg.port}: {self._error}"
            ) from self._error
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://{server.config.host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def open_server() -> Server:
            return await self._owner._serve()

        try:
            self._server = self._loop.run_until_complete(open_server())
        except OSError as e:  # port taken, bad host: reported by the constructor
            self._error = e
        finally:
            self._started.set()
        if self._server is not None:
            self._loop.run_forever()
        self._loop.close()

    def close(self) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._owner._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
