"""Soak test of `robo4d serve` on 127.0.0.1: many clients, hostile traffic mixed in; prints JSON.

    python benchmarks/serve_soak.py [--clients 8] [--requests 150] [--malformed-every 1] [--infer-ms 2]

The server (the real `serve.server.PolicyServer`) serves a fake policy that sleeps `--infer-ms` per call and
answers state + calls-since-reset, so every reply can be checked. Each of `--clients` threads opens its own
connection and runs a bounded loop of `--requests` well-formed observations; after each it sends
`--malformed-every` malformed frames (garbage bytes, text frames, wrong keys, wrong shapes and dtypes, array
maps whose byte count lies, numpy object dtypes, non-map frames) that must each get an error frame on the
same connection. Every 50 requests a client also sends one oversized payload (its connection must be closed
with code 1009; it reconnects). Beside them, slow clients send observations in fragments with pauses, and
vandals open raw TCP connections, complete the websocket handshake, send half a frame and hang up.
At the end the health endpoint must answer and a fresh client must be served.

Reports p50/p99 round-trip latency of the well-formed requests (client side, ms; the slow clients' apart, as
their pauses count in) and every count; the run
fails (exit 1) if any well-formed request went unanswered or wrong, or any malformed one got no error frame.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from robo4d.serve import protocol as proto
from robo4d.serve.msgpack_numpy import packb, unpackb
from robo4d.serve.server import PolicyServer, ServerConfig
from robo4d.types import (
    ACTION_EEF_POSE,
    STATE,
    STATE_EEF_POSE,
    ActionChunk,
    Observation,
    PolicyIO,
    image_key,
)

IO = PolicyIO(
    cameras=("front", "wrist"), image_size=(64, 64), state_kind=STATE_EEF_POSE, state_dim=8,
    action_kind=ACTION_EEF_POSE, action_dim=8, chunk=4,
)  # fmt: skip
SPEC = proto.IOSpec(io=IO, method="soak")
MAX_MESSAGE_BYTES = 256 * 1024  # one well-formed frame is ~25 KB
OVERSIZED_EVERY = 50  # well-formed requests between two oversized payloads of one client


class SoakPolicy:
    """Row k of the chunk is state + (calls since reset) + k: a reply shows whose context produced it."""

    def __init__(self, infer_s: float) -> None:
        self.calls, self.infer_s = 0, infer_s

    def predict_action_chunk(self, obs: Observation) -> ActionChunk:
        time.sleep(self.infer_s)
        self.calls += 1
        rows = obs.state[None] + self.calls + np.arange(4, dtype=np.float32)[:, None]
        return ActionChunk(actions=rows.astype(np.float32), kind="eef_pose")

    def reset(self) -> None:
        self.calls = 0


def observation(value: float) -> dict[str, Any]:
    frame: dict[str, Any] = {image_key(c): np.full((*IO.image_size, 3), 7, np.uint8) for c in IO.cameras}
    frame[STATE] = np.full(IO.state_dim, value, np.float32)
    frame[proto.TASK] = "soak"
    return frame


def malformed_frames() -> list[bytes | str]:
    """One of each kind of bad frame a client can send; each must be answered with an error frame."""
    good = observation(0.0)
    lying = {b"__ndarray__": True, b"data": b"\0" * 10, b"dtype": "<f4", b"shape": [8]}
    return [
        b"\xc1\xc1 not msgpack",
        "a text frame",
        packb([1, 2, 3]),
        packb(good | {"extra": 1}),
        packb({k: v for k, v in good.items() if k != STATE}),
        packb(good | {image_key("front"): np.zeros((63, 64, 3), np.uint8)}),
        packb(good | {image_key("wrist"): np.zeros((64, 64, 3), np.float32)}),
        packb(good | {STATE: np.full(8, np.inf, np.float32)}),
        packb(good | {STATE: lying}),
        msgpack.packb({b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|O", b"shape": [1]}),
        packb(good | {proto.TASK: 3}),
        b"\x91" * 10_000,  # 10k nested arrays: msgpack's depth limit
    ]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: list[float] = field(default_factory=list)  # well-formed requests of the ordinary clients
    slow_latencies_ms: list[float] = field(default_factory=list)  # the trickling clients' (pauses included)
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)


def open_client(stack: ExitStack, url: str) -> ClientConnection:
    ws = stack.enter_context(connect(url, proxy=None, compression=None, max_size=None, open_timeout=30))
    proto.IOSpec.from_metadata(unpackb(ws.recv(timeout=30)))
    return ws


def well_formed(ws: ClientConnection, value: float, expect_calls: int, tally: Tally) -> None:
    start = time.perf_counter()
    ws.send(packb(observation(value)))
    reply = unpackb(ws.recv(timeout=60))
    elapsed = (time.perf_counter() - start) * 1e3
    actions = reply.get(proto.ACTIONS) if isinstance(reply, dict) else None
    if not isinstance(actions, np.ndarray) or actions.shape != (4, 8) or actions[0, 0] != value + expect_calls:
        tally.fail(f"well-formed request answered with {reply!r:.200}")
        return
    with tally.lock:
        tally.latencies_ms.append(elapsed)
    tally.add("well_formed_answered")


def client(url: str, index: int, args: argparse.Namespace, tally: Tally) -> None:
    bad = malformed_frames()
    oversized = packb({"blob": np.zeros(MAX_MESSAGE_BYTES, np.uint8)})
    with ExitStack() as stack:
        ws, calls = open_client(stack, url), 0
        for r in range(args.requests):
            calls += 1
            well_formed(ws, float(index), calls, tally)
            for m in range(args.malformed_every):
                ws.send(bad[(index + r + m) % len(bad)])
                reply = unpackb(ws.recv(timeout=60))
                tally.add("malformed_sent")
                if isinstance(reply, dict) and isinstance(reply.get(proto.ERROR), str):
                    tally.add("malformed_answered_with_error")
                else:
                    tally.fail(f"malformed frame answered with {reply!r:.200}")
            if (r + 1) % OVERSIZED_EVERY == 0:
                tally.add("oversized_sent")
                try:
                    ws.send(oversized)
                    ws.recv(timeout=60)
                    tally.fail("an oversized payload was answered instead of closing the connection")
                except ConnectionClosed as e:
                    if e.rcvd is not None and e.rcvd.code == 1009:
                        tally.add("oversized_closed_1009")
                    else:
                        tally.fail(f"oversized payload: connection closed with {e.rcvd}")
                ws, calls = open_client(stack, url), 0  # a new connection starts a fresh policy context


def slow_client(url: str, args: argparse.Namespace, tally: Tally) -> None:
    """Sends each observation in four fragments with pauses (a slow link), checking every reply."""
    with ExitStack() as stack:
        ws = open_client(stack, url)
        for r in range(args.slow_requests):
            data = packb(observation(100.0))
            parts = [data[i : i + len(data) // 4 + 1] for i in range(0, len(data), len(data) // 4 + 1)]

            def trickle(parts: list[bytes] = parts):
                for part in parts:
                    time.sleep(args.slow_pause_ms / 1e3)
                    yield part

            start = time.perf_counter()
            ws.send(trickle())
            reply = unpackb(ws.recv(timeout=60))
            ok = isinstance(reply, dict) and reply.get(proto.ACTIONS) is not None
            ok = ok and reply[proto.ACTIONS][0, 0] == 100.0 + r + 1
            tally.add("slow_answered" if ok else "slow_wrong")
            if ok:
                with tally.lock:
                    tally.slow_latencies_ms.append((time.perf_counter() - start) * 1e3)
            else:
                tally.fail(f"slow client answered with {reply!r:.200}")


def vandal(host: str, port: int, args: argparse.Namespace, tally: Tally) -> None:
    """Handshakes over a raw socket, sends the header and half the payload of a masked frame, hangs up."""
    for _ in range(args.disconnects):
        key = base64.b64encode(os.urandom(16)).decode()
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(
                f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                response += chunk
            if not response.startswith(b"HTTP/1.1 101"):
                tally.fail(f"raw handshake refused: {response[:80]!r}")
                return
            payload = packb(observation(0.0))
            header = struct.pack("!BBQ", 0x82, 0x80 | 127, len(payload)) + os.urandom(4)  # FIN+binary, masked
            sock.sendall(header + payload[: len(payload) // 2])
        tally.add("disconnects_mid_frame")


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = ServerConfig(
        port=0, max_message_bytes=MAX_MESSAGE_BYTES, max_connections=args.clients + 8, inference_threads=2
    )
    tally = Tally()
    start = time.perf_counter()
    with PolicyServer(lambda: SoakPolicy(args.infer_ms / 1e3), SPEC, config).start_in_thread() as bg:
        host = config.host

        def guarded(fn: Any, *fn_args: Any) -> None:
            try:
                fn(*fn_args)
            except Exception as e:  # a client thread's own failure (e.g. the server vanished) is a result
                tally.fail(f"{fn.__name__}: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=guarded, args=(client, bg.url, i, args, tally)) for i in range(args.clients)]
        threads += [threading.Thread(target=guarded, args=(slow_client, bg.url, args, tally)) for _ in range(2)]
        threads += [threading.Thread(target=guarded, args=(vandal, host, bg.port, args, tally))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.timeout_s)
        if any(t.is_alive() for t in threads):
            tally.fail(f"clients still running after {args.timeout_s} s")
        with urllib.request.urlopen(f"http://{host}:{bg.port}{proto.HEALTH_PATH}", timeout=10) as r:
            alive = r.status == 200
        with ExitStack() as stack:
            well_formed(open_client(stack, bg.url), 5.0, 1, tally)
    sent = args.clients * args.requests + 1
    counts = tally.counts
    return {
        "clients": args.clients,
        "slow_clients": 2,
        "infer_ms": args.infer_ms,
        "seconds": round(time.perf_counter() - start, 2),
        "well_formed_sent": sent + 2 * args.slow_requests,
        "well_formed_answered": counts.get("well_formed_answered", 0) + counts.get("slow_answered", 0),
        "malformed_sent": counts.get("malformed_sent", 0),
        "malformed_answered_with_error": counts.get("malformed_answered_with_error", 0),
        "oversized_sent": counts.get("oversized_sent", 0),
        "oversized_closed_1009": counts.get("oversized_closed_1009", 0),
        "disconnects_mid_frame": counts.get("disconnects_mid_frame", 0),
        "latency_ms": {"p50": percentile(tally.latencies_ms, 50), "p99": percentile(tally.latencies_ms, 99)},
        "slow_client_latency_ms": {
            "p50": percentile(tally.slow_latencies_ms, 50),
            "p99": percentile(tally.slow_latencies_ms, 99),
        },
        "server_alive_at_end": alive,
        "failures": tally.failures[:20],
        "failure_count": len(tally.failures),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=150, help="well-formed requests per client")
    parser.add_argument("--malformed-every", type=int, default=1, help="malformed frames after each request")
    parser.add_argument("--slow-requests", type=int, default=20)
    parser.add_argument("--slow-pause-ms", type=float, default=20.0)
    parser.add_argument("--disconnects", type=int, default=50)
    parser.add_argument("--infer-ms", type=float, default=2.0)
    parser.add_argument("--timeout-s", type=float, default=900.0)
    args = parser.parse_args()
    report = run(args)
    print(json.dumps(report, indent=2))
    ok = report["failure_count"] == 0 and report["server_alive_at_end"]
    ok = ok and report["well_formed_answered"] == report["well_formed_sent"]
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
