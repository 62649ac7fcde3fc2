"""Exec routes: create, start (detached, or a hijacked stream like attach),
resize, inspect. As dockerd 20.10: a failed start of an attached exec still
answers with the stream and writes the error into it; the exec's ExitCode
becomes 126 and the CLI exits with it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ...containers import logs as jsonlog
from ...containers.attach import EXIT, START_RESULT, ShimConnection
from ...containers.execs import (Exec, ExecStartError, ExecStore, runtime_error,
                                 spawn_and_connect)
from ...errors import Conflict, InvalidParameter
from ..hijack import detach_keys, drain, hijack, raw_input
from . import blocking, exec_store, go_fields, json_response, tty_size


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise InvalidParameter("invalid JSON body") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body")
    return body


#: dockerd's ExecConfig and ExecStartCheck fields (keys match in any case, as in Go).
EXEC_FIELDS = ("User", "Privileged", "Tty", "ConsoleSize", "AttachStdin", "AttachStderr",
               "AttachStdout", "Detach", "DetachKeys", "Env", "WorkingDir", "Cmd")


async def create(request: web.Request) -> web.Response:
    body = go_fields(await _body(request), EXEC_FIELDS)
    if body.get("DetachKeys"):
        try:
            detach_keys(body["DetachKeys"])
        except InvalidParameter:
            # dockerd's words at exec create; it answers 500, a client's error is 400
            # here (the API's fuzz test admits no 5xx for a bad request)
            raise InvalidParameter(f"Invalid escape keys ({body['DetachKeys']}) provided") \
                from None
    e = await blocking(exec_store(request).create, request.match_info["id"], body)
    return json_response({"Id": e.id}, status=201)


async def inspect(request: web.Request) -> web.Response:
    e = await blocking(exec_store(request).get, request.match_info["id"])
    return json_response(e.inspect())


async def resize(request: web.Request) -> web.Response:
    st = exec_store(request)
    e = await blocking(st.get, request.match_info["id"])
    h, w = tty_size(request)
    # dockerd waits (up to 10 s) for a just-started exec to be ready.
    for _ in range(200):
        if e.running or e.exit_code is not None:
            break
        await asyncio.sleep(0.05)
    if not e.running:
        if e.exit_code is None:
            raise Conflict("timeout waiting for exec session ready")
        return web.Response(status=200)
    try:
        conn = await ShimConnection.open(st.attach_socket(e), 0)
    except OSError:
        return web.Response(status=200)  # it has just exited
    try:
        await conn.resize(h, w)
    finally:
        conn.close()
    return web.Response(status=200)


async def start(request: web.Request) -> web.StreamResponse:
    st = exec_store(request)
    body = go_fields(await _body(request), EXEC_FIELDS)
    e = await blocking(st.begin, request.match_info["id"])
    if body.get("Detach"):
        return await _start_detached(st, e)
    resp, transport = await hijack(request)
    # The stream is raw or framed by the start request's Tty, as with dockerd;
    # the process got (or not) its pty from the exec's own Tty at create. A raw
    # stream carries stdout only: dockerd drops a pipe's stderr there.
    raw = bool(body.get("Tty"))

    def out(kind: int, data: bytes) -> None:
        if not raw:
            transport.write(jsonlog.frame(kind, data))
        elif kind == 1:
            transport.write(data)

    inp = raw_input(request, transport, e.attach_stdin)
    mask = (1 if e.attach_stdin else 0) | (2 if e.attach_stdout else 0) | \
        (4 if e.attach_stderr else 0)
    try:
        conn = await spawn_and_connect(st, e, mask)
    except ExecStartError as err:
        out(1, str(err).encode() + b"\r\n")
        transport.close()
        return resp
    tasks: list[asyncio.Future] = []
    try:
        await conn.send(4)  # start: the process runs now that we listen
        keys = detach_keys(e.detach_keys) if e.tty else b""

        async def pump_out() -> str:
            while True:
                kind, payload = await conn.recv()
                if kind in (1, 2):
                    out(kind, payload)
                    await drain(transport)
                elif kind == START_RESULT:
                    res = json.loads(payload or b"{}")
                    if res.get("error"):
                        st.failed(e)
                        out(1, str(runtime_error(res["error"])).encode() + b"\r\n")
                        return "failed"
                elif kind == EXIT:
                    try:
                        info = json.loads(payload or b"{}")
                    except ValueError:
                        info = {}
                    st.finish(e, info)
                    return "exit"
                elif kind == -1:
                    await blocking(st.reconcile, e)
                    return "exit"

        def pump_in():
            return conn.pump_stdin(inp.queue, keys, close_on_eof=True)

        tasks.append(asyncio.ensure_future(pump_out()))
        if e.attach_stdin:
            tasks.append(asyncio.ensure_future(pump_in()))
        pending = list(tasks)
        while pending:
            done, rest = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending = list(rest)
            results = {t.result() for t in done if not t.cancelled() and not t.exception()}
            if results & {"exit", "failed", "detach"} or any(
                    t.exception() for t in done if not t.cancelled()):
                break
    finally:
        for t in tasks:
            t.cancel()
        conn.close()
        transport.close()
    return resp


async def _start_detached(st: ExecStore, e: Exec) -> web.Response:
    try:
        conn = await spawn_and_connect(st, e, 0)
    except ExecStartError as err:
        raise InvalidParameter(str(err)) from None
    try:
        res = await conn.start()
    finally:
        conn.close()
    if res.get("error"):
        st.failed(e)
        raise InvalidParameter(str(runtime_error(res["error"])))
    return web.Response(status=200)


def register(r: Any) -> None:
    r.add("POST", "/containers/{id}/exec", create)
    r.add("POST", "/exec/{id}/start", start)
    r.add("POST", "/exec/{id}/resize", resize)
    r.add("GET", "/exec/{id}/json", inspect)
