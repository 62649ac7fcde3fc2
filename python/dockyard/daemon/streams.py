"""Bridges between aiohttp's async bodies and the engine's blocking calls,
which run in worker threads (the Rust core drops the GIL while they work)."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any, Iterator

from aiohttp import web


def body_chunks(request: web.Request, loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """A blocking iterator, for a worker thread, over the request body."""
    while True:
        fut = asyncio.run_coroutine_threadsafe(request.content.readany(), loop)
        chunk = fut.result()
        if not chunk:
            return
        yield chunk


class ResponseWriter(io.RawIOBase):
    """A blocking file object, for a worker thread, writing to a StreamResponse."""

    def __init__(self, resp: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._resp = resp
        self._loop = loop

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        data = bytes(b)
        if data:
            asyncio.run_coroutine_threadsafe(self._resp.write(data), self._loop).result()
        return len(data)


class JSONMessages:
    """Docker's JSON message stream (progress, status, errors), thread-safe."""

    def __init__(self, resp: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._resp = resp
        self._loop = loop

    def __call__(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\r\n").encode()
        asyncio.run_coroutine_threadsafe(self._resp.write(data), self._loop).result()

    def error(self, message: str) -> None:
        self({"errorDetail": {"message": message}, "error": message})


async def start_stream(request: web.Request, content_type: str) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = content_type
    await resp.prepare(request)
    return resp
