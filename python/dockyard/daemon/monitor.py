"""The daemon's watch over running containers: it watches every running
container's shim with a pidfd; when one exits it reconciles the record,
wakes the waiters (`POST /containers/{id}/wait`) and applies the restart
policy. It also holds the attach sessions a start is released through, and
the health checks' monitor (`containers/health.py`), told of each start,
exit, pause and removal. One per app, made by `server.build_app`."""

from __future__ import annotations

import asyncio
import os
import select
from typing import Any

from ..containers.attach import START, ShimConnection
from ..containers.execs import ExecStore
from ..containers.health import HealthMonitor
from ..containers.model import Container
from ..containers.service import ContainerService
from ..errors import NotFound


class AttachSession:
    """An attach connection to a shim; a start sent through it is answered on
    it, after the attach is registered (the shim reads one connection in order).

    An attach to a stopped container makes its process at once (held before
    exec). When that fails (a bind source missing, say), the session waits
    without a connection, as dockerd's attach waits for a start: the next
    start makes the process again, and connects the session before releasing
    it (`connect`), or fails and ends the session (`abandon`)."""

    def __init__(self, conn: ShimConnection | None, mask: int = 7) -> None:
        self.conn = conn
        self.mask = mask
        self.started: asyncio.Future | None = None
        self.closed = False
        # True once connected, False when abandoned; None for a connected session
        self.ready: asyncio.Future[bool] | None = \
            None if conn is not None else asyncio.get_running_loop().create_future()

    @property
    def pending(self) -> bool:
        return self.conn is None and not self.closed

    async def connect(self, path: str) -> None:
        try:
            self.conn = await ShimConnection.open(path, self.mask)
        except OSError:
            self.abandon()  # the start releases its process without the session
            return
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(True)

    def abandon(self) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(False)

    async def start(self) -> dict[str, Any]:
        assert self.conn is not None
        self.started = asyncio.get_running_loop().create_future()
        await self.conn.send(START)
        return await self.started


class Monitor:
    """Exit watchers, waiters and attach sessions for every container."""

    def __init__(self, svc: ContainerService, execs: ExecStore) -> None:
        self.svc = svc
        self.watching: dict[str, int] = {}
        self.waiters: dict[str, list[tuple[str, asyncio.Future]]] = {}
        self.sessions: dict[str, AttachSession] = {}
        self.health = HealthMonitor(svc, execs)

    def watch(self, cid: str) -> None:
        """Watch a container started (or found running at start-up) for its
        exit, and run its health check."""
        loop = asyncio.get_running_loop()
        try:
            c = self.svc.get(cid)
        except NotFound:
            self.health.forget(cid)
            return
        loop.create_task(self.health.update(cid, c))
        if cid in self.watching:
            return
        shim = int(c.state.get("ShimPid") or 0)
        try:
            fd = os.pidfd_open(shim)
        except (OSError, ValueError):
            loop.create_task(self._exited(cid))
            return
        self.watching[cid] = fd
        loop.add_reader(fd, lambda: loop.create_task(self._on_readable(cid, fd)))

    async def collect(self, cid: str) -> None:
        """See an exit the daemon caused (stop/kill) now, before answering."""
        fd = self.watching.get(cid)
        # Only once the shim is gone: a kill with another signal may leave it running.
        if fd is not None and select.select([fd], [], [], 0)[0]:
            await self._on_readable(cid, fd)

    async def _on_readable(self, cid: str, fd: int) -> None:
        loop = asyncio.get_running_loop()
        if self.watching.get(cid) != fd:
            return
        loop.remove_reader(fd)
        os.close(fd)
        del self.watching[cid]
        await self._exited(cid)

    async def _exited(self, cid: str) -> None:
        try:
            c = await asyncio.to_thread(self.svc.reconcile, cid, True)
        except NotFound:
            c = None
        if c is None:  # removed meanwhile (a racing --rm reconcile, a DELETE)
            self.health.forget(cid)
            self.wake(cid, None, removed=True)
            return
        if c.state.get("Running") and not c.state.get("Restarting"):
            return
        if getattr(c, "removed", False):  # AutoRemove: gone with its exit
            self.health.forget(cid)
            self.wake(cid, c, removed=False)
            self.wake(cid, c, removed=True)
            return
        await self.health.update(cid, c)
        self.wake(cid, c, removed=False)
        if not c.state.get("Restarting") and not self.svc.should_restart(c):
            return  # its policy doesn't restart it
        # Restarting (Running, no process) until the policy's delay has passed;
        # a stop, kill or rm -f meanwhile cancels the restart.
        delay = await asyncio.to_thread(self.svc.begin_restart, cid)
        if delay is not None:
            await asyncio.sleep(delay)
            if await asyncio.to_thread(self.svc.restart_after_exit, cid):
                self.watch(cid)

    def wake(self, cid: str, c: Container | None, removed: bool) -> None:
        """Answer the waiters on `cid` with its exit code; those waiting for
        its removal stay unless `removed`."""
        keep = []
        for cond, fut in self.waiters.pop(cid, []):
            if fut.done():
                continue
            if cond == "removed" and not removed:
                keep.append((cond, fut))
                continue
            code = (c.state.get("ExitCode", 0) if c is not None
                    else self.svc.last_exit_codes.get(cid, 0))
            fut.set_result({"StatusCode": code, "Error": None})
        if keep:
            self.waiters[cid] = keep

    def removed(self, cid: str) -> None:
        self.health.forget(cid)
        self.end_pending(cid)
        fd = self.watching.pop(cid, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
        self.wake(cid, None, removed=True)

    def end_session(self, cid: str, session: AttachSession) -> None:
        """An attach's end: a start after it doesn't wait for it."""
        session.closed = True
        session.abandon()
        if self.sessions.get(cid) is session:
            del self.sessions[cid]
        if session.conn is not None:
            session.conn.close()

    def end_pending(self, cid: str) -> None:
        """End an attach still waiting for a start that won't come (the start
        failed, the container is gone)."""
        session = self.sessions.get(cid)
        if session is not None and session.conn is None:
            session.abandon()

    def add_waiter(self, cid: str, cond: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(cid, []).append((cond, fut))
        return fut

    def close(self) -> None:
        self.health.close()
        loop = asyncio.get_event_loop()
        for fd in self.watching.values():
            try:
                loop.remove_reader(fd)
            except Exception:  # noqa: BLE001
                pass
            os.close(fd)
        self.watching.clear()
