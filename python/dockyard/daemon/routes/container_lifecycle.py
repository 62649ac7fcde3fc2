"""Container routes for the lifecycle: start, stop, restart, kill, wait. The
app's `Monitor` sees every exit; a start is released through the attach
session the client opened first, if any (see `container_streams`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ...containers.model import Container
from ...containers.service import NOT_MODIFIED
from ...errors import DockyardError, InvalidParameter, NotFound
from . import blocking, container_service as svc, monitor, qint


async def _get(request: web.Request) -> Container:
    return await blocking(svc(request).get, request.match_info["id"])


async def _known_id(request: web.Request) -> str:
    """The container's full ID: no lookup for an ID the monitor holds (a
    container attached to or running), which is what clients send after
    create; else from the record (by name, prefix; 404 if none)."""
    ref = request.match_info["id"]
    m = monitor(request)
    if ref in m.sessions or ref in m.watching:
        return ref
    return (await _get(request)).id


async def start(request: web.Request) -> web.Response:
    s = svc(request)
    ref = request.match_info["id"]
    m = monitor(request)
    loop = asyncio.get_running_loop()
    known: list[str] = []

    def work() -> str | None:
        # One hop to a worker for the lookup and the start.
        cid = ref if ref in m.sessions or ref in m.watching else s.get(ref).id
        known.append(cid)
        session = m.sessions.get(cid)
        if session is not None and session.pending:
            # An attach whose process couldn't be made waits for this start:
            # make it again (its error is the start's) and connect the attach
            # before the release, so no output is lost.
            s.prepare(cid)
            asyncio.run_coroutine_threadsafe(
                session.connect(str(s.state_dir(cid) / "attach.sock")), loop).result()

        def release(_c: Container) -> dict[str, Any] | None:
            if session is None or session.closed or session.conn is None:
                return None
            return asyncio.run_coroutine_threadsafe(session.start(), loop).result()
        return s.start(cid, release)

    try:
        r = await blocking(work)
    except DockyardError:  # the runtime's error, or the network's (a port taken)
        if known:
            await _settle_after_failed_start(request, known[0])
        raise
    cid = known[0]
    if r == NOT_MODIFIED:
        return web.Response(status=304)
    monitor(request).watch(cid)
    return web.Response(status=204)


async def _settle_after_failed_start(request: web.Request, cid: str) -> None:
    """Wake the waiters; an AutoRemove container goes, as dockerd removes it."""
    m = monitor(request)
    m.end_pending(cid)
    try:
        c = await blocking(svc(request).get, cid)
    except NotFound:
        return
    m.wake(cid, c, removed=False)
    if c.hostconfig.get("AutoRemove"):
        await blocking(svc(request).remove, cid, True)
        m.wake(cid, c, removed=True)
        # Let the woken `wait` answer before the start error does: the client
        # cancels its wait once start fails, as with dockerd's ordering.
        await asyncio.sleep(0.01)


async def stop(request: web.Request) -> web.Response:
    c = await _get(request)
    t = qint(request, "t", -1) if request.query.get("t") else None
    r = await blocking(svc(request).stop, c.id, t)
    if r == NOT_MODIFIED:
        return web.Response(status=304)
    await monitor(request).collect(c.id)
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    c = await _get(request)
    t = qint(request, "t", -1) if request.query.get("t") else None
    s = svc(request)
    await blocking(s.stop, c.id, t)
    await monitor(request).collect(c.id)
    await blocking(s.start, c.id)
    monitor(request).watch(c.id)
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    c = await _get(request)
    await blocking(svc(request).kill, c.id, request.query.get("signal") or "SIGKILL")
    # A KILL has waited for the exit: wake the waiters before answering.
    await monitor(request).collect(c.id)
    await monitor(request).health.update(c.id)  # a paused container was thawed first
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    s = svc(request)
    cond = request.query.get("condition") or "not-running"
    if cond not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: {cond}")
    m = monitor(request)
    if cond != "not-running":
        fut = m.add_waiter(await _known_id(request), cond)
    else:
        c = await _get(request)
        fut = m.add_waiter(c.id, cond)
        # Its exit recorded already (the monitor's), or yet to be seen by the
        # monitor, which answers the waiters it has then: nothing to reconcile.
        c2: Container | None = c
        if (c.state.get("Running") or c.state.get("Prepared")) and c.id not in m.watching:
            c2 = await blocking(s.reconcile, c.id)
        if c2 is None or not (c2.state.get("Running") or c2.state.get("Prepared")):
            if not fut.done():
                fut.set_result({"StatusCode": (c2 or c).state.get("ExitCode", 0),
                                "Error": None})
    # Headers go out now, as dockerd does: clients start the container after.
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    await resp.prepare(request)
    result = await fut
    try:
        await resp.write(json.dumps(result).encode() + b"\n")
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client stopped waiting (docker run -d closes its wait)
    return resp


def register(r: Any) -> None:
    r.add("POST", "/containers/{id}/start", start)
    r.add("POST", "/containers/{id}/stop", stop)
    r.add("POST", "/containers/{id}/restart", restart)
    r.add("POST", "/containers/{id}/kill", kill)
    r.add("POST", "/containers/{id}/wait", wait)
