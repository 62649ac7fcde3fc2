"""The CRI endpoint: a gRPC server (grpcio's, on a thread pool) in the
daemon's process, serving RuntimeService and ImageService on a unix socket.
RPCs not implemented answer UNIMPLEMENTED (the generated servicers' default)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
#: at most this many CRI calls are served at once (kubelet makes a few)
WORKERS = 32


def _unimplemented(name: str) -> Any:
    def handler(self: Any, req: Any, ctx: Any) -> Any:
        ctx.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented by Dockyard")
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
        self.runtime.loop = asyncio.get_running_loop()
        # grpcio's thread-pool server, not grpc.aio: a call reaches its
        # handler, and its answer the client, with fewer thread hand-offs
        # (about 0.5 ms a call here), and the handlers' blocking engine calls
        # need a thread anyway. Threads are made as calls need them; a long
        # ExecSync holds one.
        self.server = grpc.server(ThreadPoolExecutor(max_workers=WORKERS,
                                                     thread_name_prefix="dockyard-cri"))
        self.svc.add_RuntimeServiceServicer_to_server(self.runtime, self.server)
        self.svc.add_ImageServiceServicer_to_server(self.images, self.server)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.server.add_insecure_port(f"unix://{self.path}")
        self.server.start()
        os.chmod(self.path, 0o660)
        log.info("CRI endpoint listening on unix://%s", self.path)

    async def stop(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.stop(grace=2).wait)
        await self.streaming.stop()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
