"""Registry routes: pull (`POST /images/create?fromImage=`), push, auth, search.

Pull and push answer as dockerd does: an error before the first progress
message is a plain HTTP error (404 for an unknown manifest), after it the
error travels in-band in the JSON message stream. A client that goes away
stops the transfer; layers already committed stay for the next pull.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ... import filters as filter_parse
from ...distribution.auth import AuthConfig
from ...errors import InvalidParameter
from ..errors import message_of
from ..streams import error_message, start_stream
from . import blocking, engine, json_response


class LazyStream:
    """Docker's JSON messages, with the response started by the first one."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.resp: web.StreamResponse | None = None

    async def _write(self, data: bytes) -> None:
        if self.resp is None:
            self.resp = await start_stream(self.request, "application/json")
        await self.resp.write(data)

    def __call__(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\r\n").encode()
        asyncio.run_coroutine_threadsafe(self._write(data), self.loop).result()

    async def run(self, work: Any) -> web.StreamResponse:
        try:
            await blocking(work)
        except Exception as e:  # noqa: BLE001 - before the stream: a real HTTP error
            if self.resp is None:
                raise
            msg = message_of(e)
            try:
                await self._write((json.dumps(error_message(msg)) + "\r\n").encode())
            except (ConnectionError, RuntimeError):
                return self.resp
        if self.resp is None:
            self.resp = await start_stream(self.request, "application/json")
        try:
            await self.resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return self.resp


def registry_auth(request: web.Request) -> AuthConfig:
    return AuthConfig.from_header(request.headers.get("X-Registry-Auth"))


async def pull(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    q = request.query
    name = q.get("fromImage", "")
    tag = q.get("tag") or None
    auth = registry_auth(request)
    platform = q.get("platform") or None
    stream = LazyStream(request, asyncio.get_running_loop())
    # An empty tag pulls every tag, as dockerd's API does (the CLI sends "latest").
    all_tags = tag is None and "@" not in name and not _has_tag(name)

    def work() -> None:
        eng.pull(name, tag, auth, stream, platform, all_tags)

    return await stream.run(work)


def _has_tag(name: str) -> bool:
    last = name.rsplit("/", 1)[-1]
    return ":" in last


async def push(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    name = request.match_info["name"]
    tag = request.query.get("tag") or None
    auth = registry_auth(request)
    stream = LazyStream(request, asyncio.get_running_loop())

    def work() -> None:
        eng.push(name, tag, auth, stream)

    return await stream.run(work)


async def auth(request: web.Request) -> web.Response:
    eng = engine(request)
    try:
        body = await request.json()
    except ValueError:
        raise InvalidParameter("invalid JSON in the request body") from None
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object")
    return json_response(await blocking(eng.login, AuthConfig.from_dict(body)))


async def search(request: web.Request) -> web.Response:
    eng = engine(request)
    q = request.query
    term = q.get("term", "")
    try:
        limit = int(q.get("limit") or 25)
    except ValueError:
        raise InvalidParameter(f"invalid limit {q.get('limit')!r}") from None
    f = filter_parse.parse(q.get("filters"), {"stars", "is-official", "is-automated"})
    return json_response(await blocking(eng.search, term, limit, f, registry_auth(request)))


__all__ = ["auth", "pull", "push", "search"]
