"""Published ports of the rootless daemon: an in-process forwarder (what
rootlesskit's `builtin` port driver does). There is no kernel DNAT from the
host's namespace into the daemon's own (they share no link), so the socket
that reserves a host port (ports.py) is the one listening on it; each
connection gets a socket made inside the rootless network namespace that
connects to the container's address, and the two are relayed in the kernel
(`_core.relay`: splice, a thread per direction; the bytes never reach
Python). UDP flows get one such socket per client address, dropped after a
minute idle.

The container sees connections from its network's gateway (as with Docker
rootless's builtin driver, not the client's address). One thread with its
own event loop accepts on every port and carries the UDP flows, so the
daemon's loop never sees the traffic. A restarted daemon serves the running containers' ports again
(`NetworkService.restore`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

from .. import _core
from .dns import loop_thread
from .ports import Binding

log = logging.getLogger("dockyard.network")

UDP_IDLE = 60.0


class PortForwarder:
    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: dict[str, set[asyncio.Task[Any]]] = {}
        self._relays: dict[str, list[_core.Relay]] = {}
        self._lock = threading.Lock()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop, self._thread = loop_thread("dockyard-ports")
            return self._loop

    def serve(self, cid: str, held: list[tuple[Binding, socket.socket]], target: str) -> None:
        """Forward each reserved host port to `target` (the container's
        address in the rootless namespace), the binding's container port."""
        if not held:
            return
        loop = self._ensure_loop()

        async def start() -> None:
            tasks = self._tasks.setdefault(cid, set())
            for b, sock in held:
                sock.setblocking(False)
                if b.proto == "tcp":
                    sock.listen(128)
                    tasks.add(asyncio.create_task(self._accept(cid, sock, target, b.ctr_port)))
                elif b.proto == "udp":
                    tasks.add(asyncio.create_task(self._udp(cid, sock, target, b.ctr_port)))

        asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    def stop(self, cid: str) -> None:
        """Stop serving `cid`'s ports and cut its connections (its sockets
        are the reservation's to close)."""
        if self._loop is None:
            return

        async def stop() -> None:
            tasks = self._tasks.pop(cid, set())
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for r in self._relays.pop(cid, []):
                r.stop()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)

    def close(self) -> None:
        for cid in set(self._tasks) | set(self._relays):
            self.stop(cid)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread:
                self._thread.join(5)
            self._loop.close()
            self._loop = None

    # --- TCP -----------------------------------------------------------------------------
    def _inside(self, kind: int) -> socket.socket:
        s = socket.socket(fileno=_core.netns_socket(self.netns, socket.AF_INET, kind))
        s.setblocking(False)
        return s

    async def _accept(self, cid: str, sock: socket.socket, ip: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        tasks = self._tasks.setdefault(cid, set())
        while True:
            try:
                client, _ = await loop.sock_accept(sock)
            except OSError as e:
                log.warning("container %s: port forwarder accept: %s", cid[:12], e)
                await asyncio.sleep(0.1)
                continue
            t = asyncio.create_task(self._relay(cid, client, ip, port))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    async def _relay(self, cid: str, client: socket.socket, ip: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        client.setblocking(False)
        up = None
        try:
            up = self._inside(socket.SOCK_STREAM)
            await loop.sock_connect(up, (ip, port))
        except OSError:
            client.close()  # refused: the client sees its connection closed
            if up is not None:
                up.close()
            return
        relays = [r for r in self._relays.get(cid, []) if not r.done()]
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(True)
        relays.append(_core.relay(client.detach(), up.detach()))
        self._relays[cid] = relays

    # --- UDP -----------------------------------------------------------------------------
    async def _udp(self, cid: str, sock: socket.socket, ip: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        flows: dict[Any, socket.socket] = {}
        tasks = self._tasks.setdefault(cid, set())

        async def replies(peer: Any, up: socket.socket) -> None:
            try:
                while True:
                    data = await asyncio.wait_for(loop.sock_recv(up, 65535), UDP_IDLE)
                    await loop.sock_sendto(sock, data, peer)
            except (OSError, asyncio.TimeoutError):
                pass
            finally:
                flows.pop(peer, None)
                up.close()

        try:
            while True:
                data, peer = await loop.sock_recvfrom(sock, 65535)
                up = flows.get(peer)
                if up is None:
                    up = self._inside(socket.SOCK_DGRAM)
                    try:
                        await loop.sock_connect(up, (ip, port))
                    except OSError:
                        up.close()
                        continue
                    flows[peer] = up
                    t = asyncio.create_task(replies(peer, up))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                try:
                    await loop.sock_sendall(up, data)
                except OSError:
                    pass
        finally:
            for up in flows.values():
                up.close()
