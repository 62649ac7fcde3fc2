"""Bridges between aiohttp's async bodies and the engine's blocking calls,
which run in worker threads (the Rust core drops the GIL while they work),
and Docker's JSON message streams. Hijacked connections are in `hijack`."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any, Callable, Iterator

from aiohttp import web

from .errors import message_of


async def _read_batch(request: web.Request, want: int) -> bytes:
    parts: list[bytes] = []
    n = 0
    while n < want:
        chunk = await request.content.readany()
        if not chunk:
            break
        parts.append(chunk)
        n += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def body_chunks(request: web.Request, loop: asyncio.AbstractEventLoop,
                batch: int = 1 << 20) -> Iterator[bytes]:
    """A blocking iterator, for a worker thread, over the request body. Chunks
    are batched to ~1 MiB: each one costs a hop between threads."""
    while True:
        chunk = asyncio.run_coroutine_threadsafe(_read_batch(request, batch), loop).result()
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


def error_message(message: str) -> dict[str, Any]:
    """Docker's in-band error in a JSON message stream."""
    return {"errorDetail": {"message": message}, "error": message}


class JSONMessages:
    """Docker's JSON message stream (progress, status, errors), thread-safe."""

    def __init__(self, resp: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._resp = resp
        self._loop = loop

    def __call__(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\r\n").encode()
        asyncio.run_coroutine_threadsafe(self._resp.write(data), self._loop).result()

    def error(self, message: str) -> None:
        self(error_message(message))


async def start_stream(request: web.Request, content_type: str) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = content_type
    await resp.prepare(request)
    return resp


class LazyJSONMessages:
    """Docker's JSON messages, with the response started by the first one, as
    pull and push answer: an error before the first progress message is a
    plain HTTP error (404 for an unknown manifest), after it the error
    travels in-band. A client that goes away stops the work."""

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

    async def run(self, work: Callable[[], None]) -> web.StreamResponse:
        """Run `work` (which sends through this stream) in a worker thread."""
        try:
            await asyncio.to_thread(work)
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
