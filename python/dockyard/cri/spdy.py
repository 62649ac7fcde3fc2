"""SPDY/3.1 framing, as Kubernetes' streaming (exec, attach, port-forward)
speaks it after an HTTP upgrade: multiplexed streams on one connection, each
opened with a SYN_STREAM carrying headers and answered with a SYN_REPLY.

One `Session` object per connection, for both sides: the daemon's streaming
server accepts streams, the tests' client opens them. Frames: SYN_STREAM,
SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE and DATA.
Header blocks are zlib streams (one per direction, sync-flushed per block)
primed with the protocol's dictionary.

Flow control: received data is acknowledged with WINDOW_UPDATEs (per stream
and, SPDY/3.1, per session) as it is read. Sending honours the peer's windows
only once the peer has shown it does flow control (sent a WINDOW_UPDATE or an
initial window): Kubernetes' peer (moby/spdystream) does none, sends no
updates, and would stall after the first 64 KiB otherwise. What the windows
hold back is kept (up to BUFFER_LIMIT a stream) rather than blocking the
writer: the shim drops output a slow reader leaves unread.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Optional

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
#: RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL = 1, 2, 3, 5
SETTINGS_INITIAL_WINDOW_SIZE = 7
DEFAULT_WINDOW = 64 * 1024
MAX_DATA = 32 * 1024  # per DATA frame we send
BUFFER_LIMIT = 4 << 20  # bytes of a stream held back before its writer waits

# The zlib dictionary of SPDY/3 header blocks (draft 3, section 2.6.10.1):
# length-prefixed words, then a run of common values.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status").split() + ["200 OK"] + \
    "version HTTP/1.1 url public set-cookie keep-alive origin".split()
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502"
    "504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + \
    _TAIL.encode()

Headers = dict[str, list[str]]


class ProtocolError(Exception):
    pass


def encode_headers(headers: Headers) -> bytes:
    """A name/value block, uncompressed: names lowercase, several values of
    one name joined by NUL."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), "\0".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> Headers:
    try:
        (count,), i = struct.unpack_from(">I", block), 4
        out: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, i)
            name = block[i + 4:i + 4 + n].decode().lower()
            i += 4 + n
            (n,) = struct.unpack_from(">I", block, i)
            value = block[i + 4:i + 4 + n].decode()
            i += 4 + n
            out.setdefault(name, []).extend(value.split("\0"))
        return out
    except (struct.error, UnicodeDecodeError) as e:
        raise ProtocolError(f"bad header block: {e}") from None


def control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(sid: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">II", sid & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload


class Stream:
    def __init__(self, session: "Session", sid: int, headers: Headers) -> None:
        self.session = session
        self.id = sid
        self.headers = headers
        self.reply_headers: Headers = {}
        self.replied = asyncio.Event()
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.remote_closed = False   # FIN (or reset) seen: no more data will come
        self.local_closed = False    # our FIN sent
        self.reset_by_peer = False
        self.send_window = session.initial_send_window
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._unacked = 0
        self._pending = bytearray()  # written, not yet sent (windows closed)
        self._fin = False            # a FIN to send after _pending

    def header(self, name: str, default: str = "") -> str:
        v = self.headers.get(name.lower())
        return v[0] if v else default

    async def read(self) -> bytes:
        """The next chunk of data, b"" at the stream's end."""
        data = await self._inbox.get()
        if data is None:
            self._inbox.put_nowait(None)  # later reads see the end too
            return b""
        self.session.consumed(self, len(data))
        return data

    async def write(self, data: bytes) -> None:
        """Queue `data`, sent as the peer's windows allow: waits only while
        more than BUFFER_LIMIT bytes of the stream are held back (a reader
        that is merely slow must not stop the copy from the process)."""
        if self.local_closed or self.session.closed:
            raise ConnectionResetError("stream closed")
        self._pending += data
        self.session.waiting.add(self)
        self.session.flush()
        while len(self._pending) > BUFFER_LIMIT and not self.session.closed and \
                not self.reset_by_peer:
            self._window_open.clear()
            await self._window_open.wait()
        await self.session.drain()

    async def flushed(self) -> None:
        """Wait until what was written (and the FIN) has been sent."""
        while (self._pending or self._fin) and not self.session.closed and \
                not self.reset_by_peer:
            self._window_open.clear()
            await self._window_open.wait()

    def close(self) -> None:
        """Half-close: our FIN, after what is still held back."""
        if not self.local_closed:
            self.local_closed = True
            self._fin = True
            self.session.waiting.add(self)
            self.session.flush()

    def reset(self, status: int = CANCEL) -> None:
        if not self.session.closed and not (self.local_closed and self.remote_closed):
            self.session.send(control(RST_STREAM, 0, struct.pack(">II", self.id, status)))
        self.local_closed = True
        self._pending.clear()
        self._fin = False
        self.session.waiting.discard(self)
        self._end()
        self.session.forget(self)

    def reply(self, headers: Optional[Headers] = None, fin: bool = False) -> None:
        self.session.send(control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(
            ">I", self.id) + self.session.compress(headers or {})))
        if fin:
            self.local_closed = True

    def _end(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self._inbox.put_nowait(None)
        self._window_open.set()


class Session:
    """One SPDY connection. `send` writes bytes to it, `drain` waits while the
    transport holds too much; `feed` takes what arrived. `on_stream` is
    called with each stream the peer opens (already answered by SYN_REPLY
    when `auto_reply`)."""

    def __init__(self, send: Callable[[bytes], None], drain: Callable[[], Awaitable[None]],
                 server: bool, on_stream: Callable[[Stream], None] | None = None,
                 auto_reply: bool = True) -> None:
        self._send = send
        self._drain = drain
        self.server = server
        self.on_stream = on_stream
        self.auto_reply = auto_reply
        self.streams: dict[int, Stream] = {}
        self.next_id = 2 if server else 1
        self.last_peer_id = 0
        self.closed = False
        self.goaway_received = False
        self.ended = asyncio.Event()
        self._buf = bytearray()
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.flow_control = False
        self.initial_send_window = DEFAULT_WINDOW
        self.send_window = DEFAULT_WINDOW
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._unacked = 0
        #: streams with data (or a FIN) held back by the peer's windows
        self.waiting: set[Stream] = set()

    # --- output ---------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        if not self.closed:
            self._send(frame)

    async def drain(self) -> None:
        await self._drain()

    def compress(self, headers: Headers) -> bytes:
        return self._deflate.compress(encode_headers(headers)) + \
            self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def consumed(self, stream: Stream, n: int) -> None:
        """`n` bytes of `stream` were read: reopen the peer's windows by half of
        one at a time."""
        stream._unacked += n
        self._unacked += n
        if stream._unacked >= DEFAULT_WINDOW // 2:
            if not stream.remote_closed:
                self.send(control(WINDOW_UPDATE, 0, struct.pack(">II", stream.id,
                                                                stream._unacked)))
            stream._unacked = 0
        if self._unacked >= DEFAULT_WINDOW // 2:
            self.send(control(WINDOW_UPDATE, 0, struct.pack(">II", 0, self._unacked)))
            self._unacked = 0

    def flush(self) -> None:
        """Send what the windows allow of the streams' held-back data."""
        for s in list(self.waiting):
            while s._pending and not self.closed:
                n = min(len(s._pending), MAX_DATA)
                if self.flow_control:
                    n = min(n, s.send_window, self.send_window)
                    if n <= 0:
                        break
                self.send(data_frame(s.id, 0, bytes(s._pending[:n])))
                del s._pending[:n]
                s.send_window -= n
                self.send_window -= n
            if not s._pending:
                if s._fin:
                    s._fin = False
                    self.send(data_frame(s.id, FLAG_FIN, b""))
                self.waiting.discard(s)
                self.forget(s)
            if len(s._pending) <= BUFFER_LIMIT:
                s._window_open.set()

    async def open_stream(self, headers: Headers, fin: bool = False) -> Stream:
        """Open a stream (SYN_STREAM) and wait for its SYN_REPLY."""
        if self.closed or self.goaway_received:
            raise ConnectionResetError("the SPDY session has ended")
        sid = self.next_id
        self.next_id += 2
        s = Stream(self, sid, headers)
        self.streams[sid] = s
        self.send(control(SYN_STREAM, FLAG_FIN if fin else 0, struct.pack(">IIBB", sid, 0, 0, 0)
                          + self.compress(headers)))
        if fin:
            s.local_closed = True
        ended = asyncio.ensure_future(self.ended.wait())
        replied = asyncio.ensure_future(s.replied.wait())
        try:
            await asyncio.wait([ended, replied], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            replied.cancel()
        if not s.replied.is_set():
            raise ConnectionResetError("the SPDY session ended before the stream was answered")
        if s.reset_by_peer and not s.reply_headers:
            raise ConnectionRefusedError(f"stream {sid} refused")
        return s

    async def ping(self) -> None:
        pid = self.next_id
        self.next_id += 2
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[pid] = fut
        self.send(control(PING, 0, struct.pack(">I", pid)))
        await fut

    def goaway(self, status: int = 0) -> None:
        self.send(control(GOAWAY, 0, struct.pack(">II", self.last_peer_id, status)))

    def forget(self, s: Stream) -> None:
        if s.local_closed and s.remote_closed and s not in self.waiting:
            self.streams.pop(s.id, None)

    # --- input ----------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= 8 and not self.closed:
            (length,) = struct.unpack_from(">I", self._buf, 4)
            length &= 0xFFFFFF
            if len(self._buf) < 8 + length:
                return
            head = bytes(self._buf[:8])
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = head[4]
            try:
                if head[0] & 0x80:
                    version, kind = struct.unpack_from(">HH", head)
                    if version & 0x7FFF != VERSION:
                        raise ProtocolError(f"SPDY version {version & 0x7FFF}")
                    self._control(kind, flags, payload)
                else:
                    (sid,) = struct.unpack_from(">I", head)
                    self._data(sid & 0x7FFFFFFF, flags, payload)
            except (ProtocolError, struct.error):
                self.goaway(1)
                self.end()
                return

    def end(self) -> None:
        """The connection is gone: every stream ends."""
        if self.closed:
            return
        self.closed = True
        for s in list(self.streams.values()):
            s._end()
        self.streams.clear()
        for fut in self._pings.values():
            if not fut.done():
                fut.cancel()
        for s in self.waiting:
            s._window_open.set()
        self.waiting.clear()
        self.ended.set()

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as e:
            raise ProtocolError(f"header block: {e}") from None
        return decode_headers(raw)

    def _control(self, kind: int, flags: int, p: bytes) -> None:
        if kind == SYN_STREAM:
            sid, _assoc = struct.unpack_from(">II", p)
            sid &= 0x7FFFFFFF
            headers = self._headers(p[10:])
            if sid in self.streams or sid % 2 == (0 if self.server else 1) or \
                    self.goaway_received:
                self.send(control(RST_STREAM, 0, struct.pack(">II", sid, PROTOCOL_ERROR if
                                                             sid in self.streams else
                                                             REFUSED_STREAM)))
                return
            self.last_peer_id = max(self.last_peer_id, sid)
            s = Stream(self, sid, headers)
            self.streams[sid] = s
            if flags & FLAG_FIN:
                s._end()
            if flags & FLAG_UNIDIRECTIONAL:
                s.local_closed = True
            if self.auto_reply:
                s.reply()
            if self.on_stream is not None:
                self.on_stream(s)
            else:
                s.reset(REFUSED_STREAM)
        elif kind in (SYN_REPLY, HEADERS):
            (sid,) = struct.unpack_from(">I", p)
            headers = self._headers(p[4:])
            s = self.streams.get(sid & 0x7FFFFFFF)
            if s is None:
                return
            s.reply_headers.update(headers)
            s.replied.set()
            if flags & FLAG_FIN:
                s._end()
                self.forget(s)
        elif kind == RST_STREAM:
            sid, _status = struct.unpack_from(">II", p)
            s = self.streams.pop(sid & 0x7FFFFFFF, None)
            if s is not None:
                s.reset_by_peer = True
                s.local_closed = True
                s._pending.clear()
                s._fin = False
                self.waiting.discard(s)
                s._end()
                s.replied.set()
        elif kind == SETTINGS:
            (count,) = struct.unpack_from(">I", p)
            for i in range(count):
                idflags, value = struct.unpack_from(">II", p, 4 + 8 * i)
                if idflags & 0xFFFFFF == SETTINGS_INITIAL_WINDOW_SIZE:
                    self.flow_control = True
                    delta = value - self.initial_send_window
                    self.initial_send_window = value
                    for s in self.streams.values():
                        s.send_window += delta
                    self.flush()
        elif kind == PING:
            (pid,) = struct.unpack_from(">I", p)
            fut = self._pings.pop(pid, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(None)
            else:
                self.send(control(PING, 0, p[:4]))  # echo the peer's
        elif kind == GOAWAY:
            self.goaway_received = True
        elif kind == WINDOW_UPDATE:
            sid, delta = struct.unpack_from(">II", p)
            sid &= 0x7FFFFFFF
            delta &= 0x7FFFFFFF
            self.flow_control = True
            if sid == 0:
                self.send_window += delta
            elif (s := self.streams.get(sid)) is not None:
                s.send_window += delta
            self.flush()
        # other kinds (NOOP, CREDENTIAL) are ignored, as the spec says

    def _data(self, sid: int, flags: int, payload: bytes) -> None:
        s = self.streams.get(sid)
        if s is None or s.remote_closed:
            if s is None and sid > 0:
                self.send(control(RST_STREAM, 0, struct.pack(">II", sid, INVALID_STREAM)))
            return
        if payload:
            s._inbox.put_nowait(payload)
        if flags & FLAG_FIN:
            s._end()
            self.forget(s)
