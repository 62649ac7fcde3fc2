"""The CRI endpoint: a gRPC server (grpc.aio) in the daemon's own event loop,
serving RuntimeService and ImageService on a unix socket. RPCs not
implemented answer UNIMPLEMENTED (the generated servicers' default)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import grpc

from ..containers.execs import ExecStore
from ..engine import Engine
from ..pods.service import PodService
from . import proto
from .images import ImageService
from .runtime import RuntimeService
from .streaming import StreamingServer

log = logging.getLogger("dockyard.cri")


def _unimplemented(name: str) -> Any:
    async def handler(self: Any, req: Any, ctx: Any) -> Any:
        await ctx.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented by Dockyard")
    handler.__name__ = name
    return handler


def _servicer(impl: type, base: type) -> type:
    """`impl` over the generated servicer class; the RPCs `impl` lacks answer
    UNIMPLEMENTED (the generated ones do too, but log a traceback each time)."""
    missing = {n: _unimplemented(n) for n, v in vars(base).items()
               if callable(v) and not n.startswith("_") and not hasattr(impl, n)}
    return type(f"Dockyard{base.__name__}", (impl, base), missing)


class CRIServer:
    def __init__(self, address: str, engine: Engine, pods: PodService, execs: ExecStore,
                 started: Callable[[str], None],
                 network_ready: Callable[[], tuple[bool, str]],
                 stream_addr: str = "127.0.0.1:0") -> None:
        if not address.startswith("unix://"):
            raise ValueError(f"--cri {address!r}: only unix:// addresses are served")
        self.path = address[len("unix://"):]
        self.pb, self.svc = proto.load()
        self.runtime = _servicer(RuntimeService, self.svc.RuntimeServiceServicer)(
            self.pb, engine, pods, execs, started, network_ready)
        self.streaming = StreamingServer(stream_addr, engine.containers, pods, execs)
        self.runtime.streaming = self.streaming
        self.images = _servicer(ImageService, self.svc.ImageServiceServicer)(self.pb, engine)
        self.server: Any = None

    async def start(self) -> None:
        await self.streaming.start()
        self.server = grpc.aio.server()
        self.svc.add_RuntimeServiceServicer_to_server(self.runtime, self.server)
        self.svc.add_ImageServiceServicer_to_server(self.images, self.server)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.server.add_insecure_port(f"unix://{self.path}")
        await self.server.start()
        os.chmod(self.path, 0o660)
        log.info("CRI endpoint listening on unix://%s", self.path)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=2)
        await self.streaming.stop()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
