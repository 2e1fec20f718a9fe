"""`robo4d serve`: serve a control checkpoint over websocket + msgpack (openpi's protocol, see serve/protocol.py).

Heavy imports (torch, the policy) happen in `run()`, so `robo4d serve --help` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

API_KEY_ENV = "ROBO4D_API_KEY"  # read when --api-key is not given, so the key need not appear in `ps`


@dataclass(frozen=True)
class ServeCommand:
    """Serve a trained policy to robots: metadata on connect, then observation -> action chunk per request."""

    checkpoint: Path  # checkpoint directory (or a stage/run directory with a `last` pointer)
    host: str = "127.0.0.1"  # interface to bind; loopback unless you mean to expose the policy
    port: int = 8000  # TCP port (0 picks a free one)
    api_key: str | None = None  # require "Authorization: Api-Key <key>" at the handshake (default: $ROBO4D_API_KEY)
    max_connections: int = 4  # concurrent robots; each holds its own copy of the policy
    image_size: tuple[int, int] | None = None  # (H, W) robots send; default: the checkpoint's training data

    def run(self) -> None:
        import asyncio
        import copy
        import functools
        import logging

        from robo4d.eval.policy_source import checkpoint_io_spec, load_local_policy
        from robo4d.serve.server import PolicyServer, ServerConfig

        config = ServerConfig(
            host=self.host,
            port=self.port,
            api_key=self.api_key or os.environ.get(API_KEY_ENV) or None,
            max_connections=self.max_connections,
        )
        spec = checkpoint_io_spec(self.checkpoint, image_size=self.image_size)  # refuses pre-training checkpoints
        template = load_local_policy(str(self.checkpoint))
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger(__name__).info("policy %s expects %s", spec.method, spec.to_metadata())
        server = PolicyServer(functools.partial(copy.deepcopy, template), spec, config)
        try:
            asyncio.run(server.serve_forever())
        except KeyboardInterrupt:
            pass  # Ctrl-C is the normal way to stop a server


COMMAND = ServeCommand
