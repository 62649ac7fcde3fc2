"""Bridges between aiohttp's async bodies and the engine's blocking calls,
which run in worker threads (the Rust core drops the GIL while they work)."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any, Iterator

from aiohttp import web


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


async def hijack(request: web.Request) -> tuple[web.StreamResponse, asyncio.Transport]:
    """Answer an attach/exec-start request and take over its connection: 101
    UPGRADED when the client asked for `Upgrade: tcp` (200 otherwise), then
    raw bytes on the transport. dockerd 20.10 (API 1.41) labels both stream
    forms raw-stream; clients demux by the container's Tty."""
    from .api import API_VERSION, SERVER

    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    resp = web.StreamResponse(status=101 if upgrade else 200,
                              reason="UPGRADED" if upgrade else "OK")
    resp.headers["Content-Type"] = "application/vnd.docker.raw-stream"
    resp.headers["Api-Version"] = API_VERSION
    resp.headers["Server"] = SERVER
    if upgrade:
        resp.headers["Connection"] = "Upgrade"
        resp.headers["Upgrade"] = "tcp"
    resp.force_close()
    # Raw bytes follow, delimited by the connection's end, as dockerd sends
    # them: without this a 200 would announce a chunked body it never sends.
    # (aiohttp's own WebSocketResponse clears the same flag.)
    resp._length_check = False  # noqa: SLF001
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None
    return resp, transport  # type: ignore[return-value]
