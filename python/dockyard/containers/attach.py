"""The shim's attach socket (`<state>/attach.sock`), from the daemon's side.

Frames are `[type u8][len u32 BE][payload]`. Daemon to shim: 0 stdin data,
1 close stdin, 2 resize (rows u16, cols u16), 3 signal (i32), 4 start,
5 hello (stream mask: 1 stdin, 2 stdout, 4 stderr), 6 reopen the log file.
Shim to daemon: 1 stdout, 2 stderr, 3 exit (JSON), 5 start result (JSON),
6 reopen result (JSON: {} or {"error": ...}).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from typing import Any

STDIN, CLOSE_STDIN, RESIZE, SIGNAL, START, HELLO, REOPEN_LOG = 0, 1, 2, 3, 4, 5, 6
OUT, ERR, EXIT, START_RESULT, REOPEN_RESULT = 1, 2, 3, 5, 6


def request(path: str, kind: int, reply: int, payload: bytes = b"",
            timeout: float = 30) -> dict[str, Any]:
    """One request and its JSON answer, over a blocking connection (usable
    from any thread, event loop or not). OSError when the shim is gone or
    closes without answering."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(timeout)
        dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
        try:  # the same short path as ShimConnection.open
            s.connect(f"/proc/self/fd/{dirfd}/{os.path.basename(path)}")
        finally:
            os.close(dirfd)
        s.sendall(struct.pack(">BIB", HELLO, 1, 0) + struct.pack(">BI", kind, len(payload))
                  + payload)
        f = s.makefile("rb")
        while True:
            head = f.read(5)
            if len(head) < 5:
                raise ConnectionError("the container's supervisor closed the connection")
            k, n = struct.unpack(">BI", head)
            data = f.read(n)
            if k == reply:
                return json.loads(data or b"{}")


class ShimConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: str, mask: int = 7) -> "ShimConnection":
        if len(path.encode()) < 100:
            reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
        else:
            # sun_path holds 108 bytes: reach a deep socket through its directory's fd.
            dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
            try:
                short = f"/proc/self/fd/{dirfd}/{os.path.basename(path)}"
                reader, writer = await asyncio.open_unix_connection(short, limit=1 << 20)
            finally:
                os.close(dirfd)
        conn = cls(reader, writer)
        await conn.send(HELLO, bytes((mask,)))
        return conn

    async def send(self, kind: int, payload: bytes = b"") -> None:
        self.writer.write(struct.pack(">BI", kind, len(payload)) + payload)
        await self.writer.drain()

    async def stdin(self, data: bytes) -> None:
        await self.send(STDIN, data)

    async def close_stdin(self) -> None:
        await self.send(CLOSE_STDIN)

    async def resize(self, rows: int, cols: int) -> None:
        await self.send(RESIZE, struct.pack(">HH", rows, cols))

    async def signal(self, sig: int) -> None:
        await self.send(SIGNAL, struct.pack(">i", sig))

    async def start(self) -> dict[str, Any]:
        """Tell a shim started with --wait-start to run the process."""
        await self.send(START)
        while True:
            kind, payload = await self.recv()
            if kind == START_RESULT:
                return json.loads(payload or b"{}")
            if kind == -1:
                return {"error": "the container's supervisor went away", "exit_code": 128}

    async def recv(self) -> tuple[int, bytes]:
        """The next frame, or (-1, b"") at the end."""
        try:
            head = await self.reader.readexactly(5)
            kind, n = struct.unpack(">BI", head)
            payload = await self.reader.readexactly(n) if n else b""
            return kind, payload
        except (asyncio.IncompleteReadError, ConnectionError):
            return -1, b""

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001
            pass

    async def pump_stdin(self, queue: "asyncio.Queue[bytes | None]", detach_keys: bytes,
                         close_on_eof: bool) -> str:
        """Feed a client's stdin (chunks from `queue`, None at its EOF) to the
        process. Returns "detach" when the client typed `detach_keys` (which are
        not passed on; b"" disables them), or "eof"."""
        held = b""
        while True:
            data = await queue.get()
            if data is None:
                if close_on_eof:
                    await self.close_stdin()
                return "eof"
            data = held + data
            held = b""
            if detach_keys:
                i = data.find(detach_keys)
                if i >= 0:
                    if i:
                        await self.stdin(data[:i])
                    return "detach"
                # a partial detach sequence at the end waits for the next bytes
                for n in range(len(detach_keys) - 1, 0, -1):
                    if data.endswith(detach_keys[:n]):
                        held, data = data[-n:], data[:-n]
                        break
            if data:
                await self.stdin(data)
