"""Container routes for the streams: attach (a hijacked connection to the
container's shim), logs (the log driver's file, followed) and resize (of the
container's tty)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ...containers import logs as jsonlog
from ...containers.attach import EXIT, START_RESULT, ShimConnection
from ...containers.logdrivers import ReadNotSupported
from ...containers.model import Container
from ...errors import Conflict, DockyardError, InvalidParameter, NotFound
from ..hijack import detach_keys, drain, hijack, raw_input
from ..monitor import AttachSession
from . import blocking, container_service as svc, monitor, qbool, tty_size


async def _get(request: web.Request) -> Container:
    return await blocking(svc(request).get, request.match_info["id"])


async def attach(request: web.Request) -> web.StreamResponse:
    s = svc(request)
    q = request.query
    stream = qbool(request, "stream")
    want_in, want_out, want_err = (qbool(request, "stdin"), qbool(request, "stdout"),
                                   qbool(request, "stderr"))

    def look() -> tuple[Container, bytes, bool, bool]:
        """The container, the detach keys, whether its process was made now,
        whether that failed: one hop to a worker for all (in dockerd's order
        of errors)."""
        c = s.get(request.match_info["id"])
        keys = detach_keys(q.get("detachKeys"))
        if c.state.get("Restarting"):  # no process to attach to until the restart
            raise Conflict(f"container {request.match_info['id']} is restarting, wait until "
                           "the container is running")
        if not stream or c.state.get("Running") or c.state.get("Prepared"):
            return c, keys, False, False
        # dockerd attaches to a stopped container too (`start -a` attaches
        # first): its process is made now and waits for the start call
        try:
            return s.prepare(c.id), keys, True, False
        except DockyardError:
            # dockerd reports a failed start on the start call: attach
            # succeeds, and waits for the start, which makes the process again
            # (a bind source may be back by then) or fails with the message.
            return c, keys, False, True

    c, keys, prepared, failed = await blocking(look)
    if prepared:
        monitor(request).watch(c.id)
    m = monitor(request)
    session = None
    mask = (1 if want_in else 0) | (2 if want_out else 0) | (4 if want_err else 0)
    if stream:
        # Connect before answering: the client starts the container as soon
        # as it sees the upgrade, and no output may be lost. Without a process
        # (it failed to be made) the session waits for the start's.
        conn = None if failed else \
            await ShimConnection.open(str(s.state_dir(c.id) / "attach.sock"), mask)
        session = AttachSession(conn, mask)
        m.sessions[c.id] = session
    try:
        resp, transport = await hijack(request)
    except BaseException:
        if session is not None:
            m.end_session(c.id, session)
        raise
    if qbool(request, "logs"):
        try:
            path, fmt = s.log_source(c)
        except ReadNotSupported:
            pass  # nothing kept to replay
        else:
            scan = jsonlog.LogScan(path, want_out, want_err, fmt=fmt)
            batches = scan.batches()
            while (recs := await blocking(next, batches, None)) is not None:
                transport.write(b"".join(jsonlog.render(r, c.tty, False) for r in recs))
                await drain(transport)
    if session is None:
        transport.close()
        return resp
    inp = raw_input(request, transport, want_in)
    if session.ready is not None:
        await asyncio.wait([session.ready, inp.lost], return_when=asyncio.FIRST_COMPLETED)
        if not (session.ready.done() and session.ready.result()):
            m.end_session(c.id, session)
            transport.close()
            return resp
    conn = session.conn
    assert conn is not None
    stdin_once = bool(c.config.get("StdinOnce"))

    def pump_in():
        # dockerd closes the container's stdin at the client's EOF only for
        # StdinOnce without a tty (a tty session just detaches).
        return conn.pump_stdin(inp.queue, keys if c.tty else b"", stdin_once and not c.tty)

    async def pump_out() -> str:
        while True:
            kind, payload = await conn.recv()
            if kind in (1, 2):
                transport.write(payload if c.tty else jsonlog.frame(kind, payload))
                await drain(transport)
            elif kind == START_RESULT:
                if session.started is not None and not session.started.done():
                    session.started.set_result(json.loads(payload or b"{}"))
            elif kind == EXIT or kind == -1:
                if session.started is not None and not session.started.done():
                    session.started.set_result({"error": "the container's supervisor went "
                                                "away", "exit_code": 128})
                return "exit"

    tasks = [asyncio.ensure_future(pump_out())]
    if want_in:
        tasks.append(asyncio.ensure_future(pump_in()))
    try:
        while tasks:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            results = {t.result() for t in done if not t.cancelled() and not t.exception()}
            tasks = list(pending)
            if "exit" in results or "detach" in results:
                break
    finally:
        m.end_session(c.id, session)
        for t in tasks:
            t.cancel()
        transport.close()
    return resp


async def logs(request: web.Request) -> web.StreamResponse:
    s = svc(request)
    c = await _get(request)
    q = request.query
    out, err = qbool(request, "stdout"), qbool(request, "stderr")
    if not (out or err):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    since, until = jsonlog.parse_since(q.get("since")), jsonlog.parse_since(q.get("until"))
    tail_s = q.get("tail", "all")
    # dockerd: a tail that isn't a number means all of it
    tail = int(tail_s) if tail_s.lstrip("-").isdigit() else -1
    ts = qbool(request, "timestamps")
    path, fmt = s.log_source(c)
    follow = qbool(request, "follow") and not until
    # Opened now: a container removed while we follow (docker-py's `run`
    # reads the stream after removing it) takes its file with it.
    follower = jsonlog.LogFollower(path, fmt) if follow else None
    try:
        scan = jsonlog.LogScan(path, out, err, since, until, tail, fmt)
        batches = scan.batches()
        first = await blocking(next, batches, None)
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/vnd.docker.raw-stream" if c.tty else \
            "application/vnd.docker.multiplexed-stream"
        await resp.prepare(request)
        recs = first
        while recs is not None:
            # resp.write waits for the client: a reader that doesn't keep up
            # holds the read here, not the whole log in memory
            await resp.write(b"".join(jsonlog.render(r, c.tty, ts) for r in recs))
            recs = await blocking(next, batches, None)
        if follower is not None:
            follower.offset = scan.offset
            gone = False
            while True:
                running = not gone and (c.state.get("Running") or c.state.get("Prepared"))
                new = await blocking(follower.read)
                chunk = b"".join(jsonlog.render(r, c.tty, ts) for r in new
                                 if jsonlog.wanted(r, out, err, since, until))
                if chunk:
                    await resp.write(chunk)
                if follower.more:
                    continue  # behind a fast writer: no pause, and no end before it's read
                if not running:
                    break
                await asyncio.sleep(0.1)
                try:
                    c = await blocking(s.get, c.id)
                except NotFound:
                    gone = True
                    continue  # removed: one last read of the file we hold
                if not (c.state.get("Running") or c.state.get("Prepared")):
                    continue  # one last read after the exit
    finally:
        if follower is not None:
            follower.close()
    await resp.write_eof()
    return resp


async def resize(request: web.Request) -> web.Response:
    s = svc(request)
    c = await _get(request)
    if not c.state.get("Running") and not c.state.get("Prepared"):
        raise Conflict(f"Container {c.id} is not running")
    h, w = tty_size(request)
    conn = await ShimConnection.open(str(s.state_dir(c.id) / "attach.sock"), 0)
    try:
        await conn.resize(h, w)
    finally:
        conn.close()
    return web.Response(status=200)


def register(r: Any) -> None:
    r.add("POST", "/containers/{id}/resize", resize)
    r.add("POST", "/containers/{id}/attach", attach)
    r.add("GET", "/containers/{id}/logs", logs)
