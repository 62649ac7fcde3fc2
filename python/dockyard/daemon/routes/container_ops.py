"""Container operations beyond the lifecycle: pause/unpause, update, top,
changes, export, commit, archive (`docker cp`) and stats. The work is in their
modules of `dockyard.containers`; these handlers run it in worker threads
and stream the results."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from typing import Any

from aiohttp import web

from ...containers import archive, rootfs
from ...containers.commit import commit as commit_container
from ...containers.pause import pause as pause_container
from ...containers.pause import unpause as unpause_container
from ...containers.service import ContainerService
from ...containers.stats import empty_stats, sample, with_previous
from ...containers.top import top as top_processes
from ...containers.update import update as update_container
from ...engine import Engine
from ...errors import InvalidParameter
from . import blocking, engine, json_response, monitor, qbool

CHUNK = 256 * 1024


def svc(request: web.Request) -> ContainerService:
    return engine(request).containers


def _cid(request: web.Request) -> str:
    return request.match_info["id"]


async def pause(request: web.Request) -> web.Response:
    await blocking(pause_container, svc(request), _cid(request))
    await monitor(request).health.update(_cid(request))  # no probes while paused
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await blocking(unpause_container, svc(request), _cid(request))
    await monitor(request).health.update(_cid(request))
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        config = json.loads(body) if body.strip() else {}
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    if not isinstance(config, dict):
        raise InvalidParameter("invalid update config")
    warnings = await blocking(update_container, svc(request), _cid(request), config)
    return json_response({"Warnings": warnings or None})


async def top(request: web.Request) -> web.Response:
    out = await blocking(top_processes, svc(request), _cid(request),
                         request.query.get("ps_args"))
    return json_response(out)


async def changes(request: web.Request) -> web.Response:
    out = await blocking(rootfs.changes, svc(request), _cid(request))
    return json_response(out or None)


async def _stream_file(request: web.Request, resp: web.StreamResponse, path: str) -> None:
    f = await blocking(open, path, "rb")
    try:
        while True:
            chunk = await blocking(f.read, CHUNK)
            if not chunk:
                break
            await resp.write(chunk)
    finally:
        f.close()


async def export(request: web.Request) -> web.StreamResponse:
    s = svc(request)
    c = await blocking(s.get, _cid(request))
    r, w = os.pipe()
    os.set_blocking(r, True)
    writer = asyncio.ensure_future(blocking(_export_and_close, s, c.id, w))
    resp: web.StreamResponse | None = None
    reader = os.fdopen(r, "rb", buffering=0)
    try:
        first = await blocking(reader.read, CHUNK)
        if not first:
            await writer  # an export that failed before any output: its error
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/x-tar"
        await resp.prepare(request)
        chunk = first
        while chunk:
            await resp.write(chunk)
            chunk = await blocking(reader.read, CHUNK)
        await resp.write_eof()
    finally:
        reader.close()
        try:
            await writer
        except Exception:  # noqa: BLE001 - a broken pipe after the client left
            if resp is None:
                raise
    return resp


def _export_and_close(s: ContainerService, cid: str, w: int) -> None:
    try:
        rootfs.export(s, cid, w)
    finally:
        os.close(w)


async def commit(request: web.Request) -> web.Response:
    q = request.query
    body = await request.read()
    config: dict[str, Any] | None = None
    if body.strip():
        try:
            config = json.loads(body)
        except ValueError as e:
            raise InvalidParameter(f"invalid JSON: {e}") from None
        if config is not None and not isinstance(config, dict):
            raise InvalidParameter("invalid config")
    pause_it = qbool(request, "pause", True) if q.get("pause", "") != "" else True
    iid = await blocking(commit_container, svc(request), q.get("container", ""),
                         q.get("repo", ""), q.get("tag", ""), q.get("comment", ""),
                         q.get("author", ""), pause_it, q.getall("changes", []), config)
    return json_response({"Id": iid}, status=201)


def _path(request: web.Request) -> str:
    p = request.query.get("path", "")
    if not p:
        raise InvalidParameter("bad parameter: path cannot be empty")
    if "\x00" in p:
        raise InvalidParameter("bad parameter: path contains a NUL byte")
    return p


async def archive_head(request: web.Request) -> web.Response:
    stat = await blocking(archive.stat_path, svc(request), _cid(request), _path(request))
    return web.Response(status=200, headers={
        "X-Docker-Container-Path-Stat": archive.stat_header(stat),
        "Content-Type": "application/json"})


async def archive_get(request: web.Request) -> web.StreamResponse:
    path = _path(request)
    eng: Engine = engine(request)
    tmpdir = eng.new_tempdir()
    try:
        tar = str(tmpdir / "archive.tar")
        stat = await blocking(archive.archive_to, eng.containers, _cid(request), path, tar)
        resp = web.StreamResponse(status=200, headers={
            "X-Docker-Container-Path-Stat": archive.stat_header(stat)})
        resp.content_type = "application/x-tar"
        await resp.prepare(request)
        await _stream_file(request, resp, tar)
        await resp.write_eof()
        return resp
    finally:
        await blocking(shutil.rmtree, tmpdir, True)


async def archive_put(request: web.Request) -> web.Response:
    path = _path(request)
    eng: Engine = engine(request)
    c = await blocking(eng.containers.get, _cid(request))
    tmpdir = eng.new_tempdir()
    try:
        tar = str(tmpdir / "in.tar")
        f = await blocking(open, tar, "wb")
        try:
            while True:
                chunk = await request.content.read(CHUNK)
                if not chunk:
                    break
                await blocking(f.write, chunk)
        finally:
            f.close()
        await blocking(archive.extract_to, eng.containers, c.id, path, tar,
                       qbool(request, "noOverwriteDirNonDir"))
    finally:
        await blocking(shutil.rmtree, tmpdir, True)
    return web.Response(status=200)


async def stats(request: web.Request) -> web.StreamResponse:
    s = svc(request)
    c = await blocking(s.get, _cid(request))
    stream = qbool(request, "stream", True)
    one_shot = qbool(request, "one-shot")
    if not c.state.get("Running"):
        return json_response(empty_stats(c))
    if not stream:
        first = await blocking(sample, s, c)
        if one_shot:
            return json_response(first)
        await asyncio.sleep(1.0)
        cur = await blocking(sample, s, c)
        return json_response(with_previous(cur, first))
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    await resp.prepare(request)
    prev: dict[str, Any] | None = None
    while True:
        c = await blocking(s.get, c.id)
        if not c.state.get("Running"):
            break
        cur = await blocking(sample, s, c)
        out = with_previous(json.loads(json.dumps(cur)), prev)
        try:
            await resp.write(json.dumps(out).encode() + b"\n")
        except (ConnectionError, RuntimeError):
            break
        prev = cur
        await asyncio.sleep(1.0)
    return resp


def register(r: Any) -> None:
    r.add("POST", "/containers/{id}/pause", pause)
    r.add("POST", "/containers/{id}/unpause", unpause)
    r.add("POST", "/containers/{id}/update", update)
    r.add("GET", "/containers/{id}/top", top)
    r.add("GET", "/containers/{id}/changes", changes)
    r.add("GET", "/containers/{id}/export", export)
    r.add("GET", "/containers/{id}/stats", stats)
    r.add("HEAD", "/containers/{id}/archive", archive_head)
    r.add("GET", "/containers/{id}/archive", archive_get)
    r.add("PUT", "/containers/{id}/archive", archive_put)
    r.add("POST", "/commit", commit)

