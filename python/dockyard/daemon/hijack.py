"""Hijacked connections, as attach and exec-start use them: the HTTP answer
that hands the connection over to raw bytes, the client's input after it
(where a half-close ends stdin only), and Docker's detach keys."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from aiohttp import web

from ..errors import InvalidParameter
from .api import API_VERSION, SERVER


async def hijack(request: web.Request) -> tuple[web.StreamResponse, asyncio.Transport]:
    """Answer an attach/exec-start request and take over its connection: 101
    UPGRADED when the client asked for `Upgrade: tcp` (200 otherwise), then
    raw bytes on the transport. dockerd 20.10 (API 1.41) labels both stream
    forms raw-stream; clients demux by the container's Tty."""
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
    request["hijacked"] = True  # no more headers from server._docker_headers
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None
    return resp, transport  # type: ignore[return-value]


async def drain(transport: asyncio.Transport, limit: int = 4 << 20) -> None:
    """Wait while the hijacked connection holds more than `limit` bytes
    unsent: a client that doesn't keep up stops our reads from the shim, which
    then drops it past its own bound (the shim's broadcast) rather than block
    the container. Nothing piles up in the daemon."""
    while transport.get_write_buffer_size() > limit and not transport.is_closing():
        await asyncio.sleep(0.01)


class RawInput:
    """Receives the raw client bytes after the HTTP upgrade (None at EOF)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        # set when the connection is gone (not at a half-close)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)

    def connection_lost(self) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class HalfCloseProtocol(asyncio.Protocol):
    """Wraps aiohttp's protocol on a hijacked connection: EOF from the client
    ends stdin only."""

    def __init__(self, inner: Any, on_eof: Callable[[], None],
                 on_lost: Callable[[], None]) -> None:
        self.inner = inner
        self.on_eof = on_eof
        self.on_lost = on_lost

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.on_eof()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.on_lost()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def raw_input(request: web.Request, transport: asyncio.Transport, stdin: bool) -> RawInput:
    """The client's bytes on a hijacked connection, queued when `stdin` is
    attached. The client shuts its write side once stdin is done (or at once
    without -i); output must keep flowing, so a half-close must not close
    the transport."""
    inp = RawInput()
    proto = request.protocol
    if stdin:
        proto.set_parser(inp)  # type: ignore[union-attr,arg-type]
    transport.set_protocol(HalfCloseProtocol(proto, inp.feed_eof, inp.connection_lost))
    return inp


_CTRL_PUNCT = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def detach_keys(spec: str | None) -> bytes:
    """Docker's `--detach-keys` (`ctrl-p,ctrl-q` by default) as the bytes to watch for."""
    if spec is None or spec == "":
        return b"\x10\x11"  # ctrl-p, ctrl-q
    if not isinstance(spec, str):
        raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    out = bytearray()
    for k in spec.split(","):
        k = k.strip()
        if k.startswith("ctrl-") and len(k) == 6:
            ch = k[5]
            out.append((ord(ch.upper()) - 64) & 0x7F if ch.isalpha() else
                       _CTRL_PUNCT.get(ch, 0))
        elif len(k) == 1 and k.isascii():
            out.append(ord(k))
        else:
            raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)
