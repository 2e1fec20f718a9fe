"""`robo4d serve`: serve a control checkpoint over websocket + msgpack (openpi's protocol, see serve/protocol.py).

    robo4d serve --checkpoint runs/arm4r/control
    robo4d serve --checkpoint runs/real/control --camera-map image=front   # the robot's `image` is the policy's `front`

Any robot-command policy is served: end-effector poses or joint-space chunks, as its `PolicyIO` declares;
pre-training checkpoints are refused before the policy is loaded. The checkpoint's training camera map is
not applied in reverse (a robot need not name its cameras like the training dataset); it is logged as a hint.
Heavy imports (torch, the policy) happen in `plan()`, so `robo4d serve --help` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import tyro

from robo4d.types import API_KEY_ENV


@dataclass(frozen=True)
class ServeCommand:
    """Serve a trained policy to robots: metadata on connect, then observation -> action chunk per request."""

    checkpoint: Path  # checkpoint directory (or a stage/run directory with a `last` pointer)
    host: str = "127.0.0.1"  # interface to bind; loopback unless you mean to expose the policy
    port: int = 8000  # TCP port (0 picks a free one)
    api_key: str | None = None  # require "Authorization: Api-Key <key>" at the handshake (default: $ROBO4D_API_KEY)
    max_connections: int = 4  # concurrent robots; each holds its own copy of the policy
    # (H, W) robots send; default: the policy's PolicyIO.image_size. Only for policies that resize internally.
    image_size: tuple[int, int] | None = None
    # Robot camera -> policy camera, ROBOT=POLICY (repeatable), e.g. image=front; unmapped cameras keep their names.
    camera_map: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()

    def plan(self) -> tuple[Any, Callable[[], Any], Any]:
        """(IOSpec, make_policy, ServerConfig), validated before the policy is loaded; raises ValueError."""
        import copy
        import functools
        import logging

        from robo4d.eval.camera_map import parse_camera_map
        from robo4d.eval.policy_source import checkpoint_io, load_local_policy, require_control
        from robo4d.serve.protocol import IOSpec
        from robo4d.serve.server import ServerConfig

        config = ServerConfig(
            host=self.host,
            port=self.port,
            api_key=self.api_key or os.environ.get(API_KEY_ENV) or None,
            max_connections=self.max_connections,
        )
        found = checkpoint_io(self.checkpoint)
        require_control(found.io, found.method, self.checkpoint)
        io = found.io if self.image_size is None else replace(found.io, image_size=tuple(self.image_size))
        spec = IOSpec(io=io, camera_map=parse_camera_map(self.camera_map, io.cameras), method=found.method)
        log = logging.getLogger(__name__)
        if found.camera_map and not self.camera_map:
            trained = " ".join(f"{src}={dst}" for src, dst in found.camera_map.items())
            log.info("trained with --camera-map %s; pass it here if the robot names its cameras like that dataset",
                     trained)  # fmt: skip
        template = load_local_policy(str(self.checkpoint))
        return spec, functools.partial(copy.deepcopy, template), config

    def run(self) -> None:
        import asyncio
        import logging

        from robo4d.serve.server import PolicyServer

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        spec, make_policy, config = self.plan()
        logging.getLogger(__name__).info("policy %s expects %s", spec.method, spec.to_metadata())
        server = PolicyServer(make_policy, spec, config)
        try:
            asyncio.run(server.serve_forever())
        except KeyboardInterrupt:
            pass  # Ctrl-C is the normal way to stop a server


COMMAND = ServeCommand
