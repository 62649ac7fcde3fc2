"""The CRI streaming server: where the `Exec`, `Attach` and `PortForward` RPCs
send kubelet (or crictl). Each RPC stores its request under a one-time token
(unused tokens expire after a minute, as k8s.io/streaming's request cache) and
answers with `http://<addr>/<kind>/<token>`; the client then upgrades that URL
to SPDY/3.1 (`spdy.py`) or to a WebSocket and speaks:

- remotecommand (exec, attach): over SPDY, `v4.channel.k8s.io` (also v3, v2),
  one stream per channel named by its `streamType` header: error, stdin,
  stdout, stderr, resize (JSON {Width, Height}). The v4 error stream carries
  a metav1.Status: Success, or Failure with reason NonZeroExitCode and the
  code in details.causes. Over a WebSocket, `v5.channel.k8s.io` (and v4):
  binary messages prefixed by their channel (0 stdin, 1 stdout, 2 stderr,
  3 error, 4 resize; v5's 255 closes the channel named next).
- port-forward: over SPDY, `portforward.k8s.io`, a data and an error stream
  per connection, paired by their `requestID` header, for the `port` header;
  the other end is 127.0.0.1:<port> in the pod's network namespace (the
  host's for a host-network pod). Newer clients tunnel the same SPDY session
  in a WebSocket's binary messages (`SPDY/3.1+portforward.k8s.io`).

Exec runs through the engine's exec machinery (a `dockyard-shim exec`);
attach joins the container's own shim; both through the shim's attach socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .. import _core
from ..containers.attach import ERR, EXIT, OUT, START, START_RESULT, ShimConnection
from ..containers.execs import ExecStore, spawn_and_connect
from ..containers.service import ContainerService
from ..errors import Conflict, InvalidParameter
from ..pods.records import Pod
from ..pods.service import PodService
from . import spdy

log = logging.getLogger("dockyard.cri")

#: remotecommand protocols, most preferred first
SPDY_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io")
WS_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORTFORWARD = "portforward.k8s.io"
TUNNEL_PREFIX = "SPDY/3.1+"     # SPDY carried in a WebSocket's binary messages
TOKEN_TTL = 60.0               # seconds an unused URL stays valid
MAX_IN_FLIGHT = 1000           # tokens held at once
STREAM_CREATION_TIMEOUT = 30.0  # for the client to open the streams it announced
WRITE_LIMIT = 4 << 20          # bytes unsent on a connection before we wait
LINGER = 10.0                  # for the client's end of a finished SPDY session

EXIT_CODE_REASON = "NonZeroExitCode"
DETACHED = "detached"


def status_success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def status_exit(code: int) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": EXIT_CODE_REASON,
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def status_error(msg: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {msg}",
            "reason": "InternalError", "details": {"causes": [{"message": msg}]},
            "code": 500}


# --- the request cache ----------------------------------------------------------------
@dataclass
class Pending:
    kind: str                  # "exec", "attach" or "portforward"
    request: dict[str, Any]    # the RPC's fields (container_id, cmd, tty, ...)
    expires: float


class RequestCache:
    def __init__(self) -> None:
        self.entries: dict[str, Pending] = {}

    def _expire(self) -> None:
        now = time.monotonic()
        for t in [t for t, p in self.entries.items() if p.expires <= now]:
            del self.entries[t]

    def insert(self, kind: str, request: dict[str, Any]) -> str:
        self._expire()
        if len(self.entries) >= MAX_IN_FLIGHT:
            raise Conflict("too many streaming requests in flight")
        token = secrets.token_urlsafe(8)
        self.entries[token] = Pending(kind, request, time.monotonic() + TOKEN_TTL)
        return token

    def consume(self, kind: str, token: str) -> Pending | None:
        self._expire()
        p = self.entries.get(token)
        if p is None or p.kind != kind:
            return None
        del self.entries[token]
        return p


def validate(kind: str, req: dict[str, Any]) -> None:
    """What containerd refuses at the RPC, before any URL is made."""
    if kind == "portforward":
        if not req.get("pod_sandbox_id"):
            raise InvalidParameter("missing required pod_sandbox_id")
        return
    if not req.get("container_id"):
        raise InvalidParameter("missing required container_id")
    if req.get("tty") and req.get("stderr"):
        # a tty has one output: nothing to multiplex stderr on
        raise InvalidParameter("tty and stderr cannot both be true")
    if not (req.get("stdin") or req.get("stdout") or req.get("stderr")):
        raise InvalidParameter("one of stdin, stdout, or stderr must be set")
    if kind == "exec" and not req.get("cmd"):
        raise InvalidParameter("exec needs a command")


# --- the client's side of a session, per transport ------------------------------------
@dataclass
class Channels:
    """A remotecommand session's client, whatever carries it: its stdin
    (chunks, None at its end), its terminal sizes (width, height), and the
    `gone` event set when the client goes away."""
    stdin: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    resizes: asyncio.Queue[tuple[int, int]] = field(default_factory=asyncio.Queue)
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def out(self, fd: int, data: bytes) -> None:
        raise NotImplementedError

    async def finish(self, status: dict[str, Any]) -> None:
        raise NotImplementedError


def resize_decoder(push: Any) -> Any:
    """A feeder of a resize channel's bytes: a run of JSON {Width, Height}."""
    buf = bytearray()
    dec = json.JSONDecoder()

    def feed(data: bytes) -> None:
        buf.extend(data)
        text = buf.decode("utf-8", "replace")
        i = 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                break
            try:
                obj, i = dec.raw_decode(text, i)
            except ValueError:
                break
            if isinstance(obj, dict):
                try:
                    push((int(obj.get("Width") or 0), int(obj.get("Height") or 0)))
                except (TypeError, ValueError):
                    pass
        del buf[:len(text[:i].encode())]

    return feed


class SpdyChannels(Channels):
    def __init__(self, version: str, streams: dict[str, spdy.Stream]) -> None:
        super().__init__()
        self.version = version
        self.streams = streams
        self.tasks: list[asyncio.Task[None]] = []
        if "stdin" in streams:
            self.tasks.append(asyncio.ensure_future(self._copy_stdin(streams["stdin"])))
        if "resize" in streams:
            self.tasks.append(asyncio.ensure_future(self._copy_resize(streams["resize"])))

    async def _copy_stdin(self, s: spdy.Stream) -> None:
        while data := await s.read():
            self.stdin.put_nowait(data)
        self.stdin.put_nowait(None)

    async def _copy_resize(self, s: spdy.Stream) -> None:
        feed = resize_decoder(self.resizes.put_nowait)
        while data := await s.read():
            feed(data)

    async def out(self, fd: int, data: bytes) -> None:
        s = self.streams.get("stdout" if fd == 1 else "stderr")
        if s is not None and not s.local_closed:
            try:
                await s.write(data)
            except ConnectionError:
                self.gone.set()

    async def finish(self, status: dict[str, Any]) -> None:
        for t in self.tasks:
            t.cancel()
        for name in ("stdout", "stderr"):
            if name in self.streams:
                self.streams[name].close()
        err = self.streams["error"]
        if self.version == "v4.channel.k8s.io":
            body = json.dumps(status).encode()
        else:  # v2, v3: the error's text, nothing on success
            body = b"" if status["status"] == "Success" else status["message"].encode()
        try:
            if body:
                await err.write(body)
        except ConnectionError:
            pass
        err.close()
        # everything out before the connection ends
        await asyncio.wait([asyncio.ensure_future(s.flushed()) for s in self.streams.values()],
                           timeout=STREAM_CREATION_TIMEOUT)


class WsChannels(Channels):
    def __init__(self, ws: web.WebSocketResponse, version: str) -> None:
        super().__init__()
        self.ws = ws
        self.version = version
        self._resize = resize_decoder(self.resizes.put_nowait)

    async def read(self) -> None:
        """Take the client's messages until it closes."""
        stdin_open = True
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            ch, data = msg.data[0], msg.data[1:]
            if ch == 0 and stdin_open and data:
                self.stdin.put_nowait(bytes(data))
            elif ch == 4:
                self._resize(bytes(data))
            elif ch == 255 and data[:1] == b"\0" and self.version == "v5.channel.k8s.io":
                stdin_open = False
                self.stdin.put_nowait(None)
        if stdin_open:
            self.stdin.put_nowait(None)
        self.gone.set()

    async def out(self, fd: int, data: bytes) -> None:
        try:
            await self.ws.send_bytes(bytes((fd,)) + data)
        except ConnectionError:
            self.gone.set()

    async def finish(self, status: dict[str, Any]) -> None:
        try:
            await self.ws.send_bytes(b"\x03" + json.dumps(status).encode())
            await self.ws.close()
        except ConnectionError:
            pass


# --- SPDY connections over aiohttp -----------------------------------------------------
class _Takeover(asyncio.Protocol):
    """Wraps aiohttp's protocol on an upgraded connection: the bytes go to
    the SPDY session, the connection's end to both."""

    def __init__(self, inner: Any, session: spdy.Session) -> None:
        self.inner = inner
        self.session = session

    def data_received(self, data: bytes) -> None:
        self.session.feed(data)

    def eof_received(self) -> bool:
        self.session.end()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.session.end()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def _offered(request: web.Request) -> list[str]:
    """The WebSocket subprotocols the client offers."""
    return [x.strip() for v in request.headers.getall("Sec-WebSocket-Protocol", [])
            for x in v.split(",")]


def _negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    for p in offered:
        for one in p.split(","):
            if one.strip() in supported:
                return one.strip()
    return None


async def _upgrade_spdy(request: web.Request, protocol: str,
                        on_stream: Any) -> tuple[web.StreamResponse, spdy.Session,
                                                 asyncio.Transport]:
    resp = web.StreamResponse(status=101, reason="Switching Protocols")
    resp.headers["Connection"] = "Upgrade"
    resp.headers["Upgrade"] = "SPDY/3.1"
    if protocol:
        resp.headers["X-Stream-Protocol-Version"] = protocol
    resp.force_close()
    resp._length_check = False  # noqa: SLF001 - raw frames follow, as after a WebSocket's 101
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None

    async def drain() -> None:
        while transport.get_write_buffer_size() > WRITE_LIMIT and not transport.is_closing():
            await asyncio.sleep(0.01)

    session = spdy.Session(transport.write, drain, server=True, on_stream=on_stream)
    transport.set_protocol(_Takeover(request.protocol, session))
    return resp, session, transport  # type: ignore[return-value]


class _WsPipe:
    """A SPDY session's output as WebSocket messages, in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.pending = 0
        self.task = asyncio.ensure_future(self._run())

    def send(self, frame: bytes) -> None:
        self.pending += len(frame)
        self.queue.put_nowait(frame)

    async def _run(self) -> None:
        while True:
            chunks = [await self.queue.get()]
            while not self.queue.empty():
                chunks.append(self.queue.get_nowait())
            data = b"".join(chunks)
            try:
                await self.ws.send_bytes(data)
            except ConnectionError:
                pass
            self.pending -= len(data)

    async def drain(self) -> None:
        while self.pending > WRITE_LIMIT and not self.ws.closed:
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        deadline = time.monotonic() + 5  # what is queued goes out first
        while self.pending and not self.ws.closed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.task.cancel()


async def _end_spdy(session: spdy.Session, transport: asyncio.Transport) -> None:
    """Close gracefully: our FIN once everything is sent, then the client's
    end (or LINGER) before the socket goes. Closing with the client's window
    updates still unread would make the kernel answer with a reset, and a
    reset throws away whatever the client has not read yet: an exec's last
    few hundred kilobytes."""
    session.goaway()
    try:
        if not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()  # after the buffer is out
            try:
                await asyncio.wait_for(session.ended.wait(), LINGER)
            except asyncio.TimeoutError:
                pass
    finally:
        session.end()
        transport.close()


# --- the server -----------------------------------------------------------------------
class StreamingServer:
    def __init__(self, address: str, containers: ContainerService, pods: PodService,
                 execs: ExecStore) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port or 0)
        self.containers = containers
        self.pods = pods
        self.execs = execs
        self.cache = RequestCache()
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{kind:exec|attach|portforward}/{token}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1,
                                    access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        server = site._server  # noqa: SLF001 - the port actually bound (port 0: a free one)
        port = server.sockets[0].getsockname()[1] if server and server.sockets else self.port
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1" if host != "::" else "::1"
        self.base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        log.info("CRI streaming server listening on %s", self.base_url)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def url(self, kind: str, request: dict[str, Any]) -> str:
        """Validate an Exec/Attach/PortForward request and keep it for its URL."""
        validate(kind, request)
        return f"{self.base_url}/{kind}/{self.cache.insert(kind, request)}"

    # --- HTTP -----------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        pending = self.cache.consume(kind, request.match_info["token"])
        if pending is None:
            return web.Response(status=404, text="unknown or expired streaming token\n")
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade == "websocket":
            return await self._websocket(request, pending)
        if upgrade.startswith("spdy/3"):
            if kind == "portforward":
                return await self._portforward(request, pending)
            return await self._remotecommand(request, pending)
        return web.Response(status=400, text="expected an upgrade to SPDY/3.1 or WebSocket\n")

    def _refuse(self, supported: tuple[str, ...]) -> web.Response:
        resp = web.Response(status=403, text="unable to upgrade: unable to negotiate protocol: "
                            f"client supports none of {list(supported)}\n")
        for p in supported:
            resp.headers.add("X-Accepted-Stream-Protocol-Versions", p)
        return resp

    async def _remotecommand(self, request: web.Request, p: Pending) -> web.StreamResponse:
        offered = request.headers.getall("X-Stream-Protocol-Version", [])
        version = _negotiate(offered, SPDY_PROTOCOLS)
        if version is None:
            return self._refuse(SPDY_PROTOCOLS)
        req = p.request
        tty = bool(req.get("tty"))
        want = {"error"}
        want |= {"stdin"} if req.get("stdin") else set()
        want |= {"stdout"} if req.get("stdout") else set()
        want |= {"stderr"} if req.get("stderr") and not tty else set()
        want |= {"resize"} if tty and version != "v2.channel.k8s.io" else set()
        streams: dict[str, spdy.Stream] = {}
        complete = asyncio.Event()

        def on_stream(s: spdy.Stream) -> None:
            kind = s.header("streamtype")
            if kind not in want or kind in streams:
                s.reset(spdy.REFUSED_STREAM)
                return
            streams[kind] = s
            if set(streams) == want:
                complete.set()

        resp, session, transport = await _upgrade_spdy(request, version, on_stream)
        try:
            waiter = asyncio.ensure_future(complete.wait())
            ended = asyncio.ensure_future(session.ended.wait())
            await asyncio.wait([waiter, ended], timeout=STREAM_CREATION_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            ended.cancel()
            if not complete.is_set():
                log.info("CRI %s: the client opened %s of %s", p.kind, sorted(streams),
                         sorted(want))
                return resp
            ch = SpdyChannels(version, streams)
            session_end = asyncio.ensure_future(session.ended.wait())
            session_end.add_done_callback(lambda _: ch.gone.set())
            try:
                await self._run(p, ch)
            finally:
                session_end.cancel()
        finally:
            await _end_spdy(session, transport)
        return resp

    async def _websocket(self, request: web.Request, p: Pending) -> web.StreamResponse:
        if p.kind == "portforward":
            return await self._portforward_ws(request, p)
        ws = web.WebSocketResponse(protocols=WS_PROTOCOLS, autoping=True, max_msg_size=0)
        if not any(x in WS_PROTOCOLS for x in _offered(request)):
            return self._refuse(WS_PROTOCOLS)
        await ws.prepare(request)
        ch = WsChannels(ws, ws.ws_protocol or WS_PROTOCOLS[0])
        reader = asyncio.ensure_future(ch.read())
        try:
            await self._run(p, ch)
        finally:
            reader.cancel()
            if not ws.closed:
                await ws.close()
        return ws

    async def _run(self, p: Pending, ch: Channels) -> None:
        try:
            if p.kind == "exec":
                status = await self._exec(p.request, ch)
            else:
                status = await self._attach(p.request, ch)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - the client learns it on the error channel
            log.info("CRI %s failed: %s", p.kind, e)
            status = status_error(str(e))
        if not ch.gone.is_set():
            await ch.finish(status)

    # --- exec and attach ------------------------------------------------------------
    async def _pump(self, conn: ShimConnection, ch: Channels, stdin: bool, detach_at_eof: bool,
                    until_exit: Any) -> Any:
        """Copy between the client and a shim until `until_exit` (the output
        side) ends or the client goes: its result, or None when the client
        went. At the end of the client's stdin, the process's stdin is closed,
        or with `detach_at_eof` the session ends there (DETACHED)."""

        async def copy_in() -> str:
            while (data := await ch.stdin.get()) is not None:
                await conn.stdin(data)
            if detach_at_eof:
                return DETACHED
            await conn.close_stdin()
            await asyncio.Event().wait()  # the session goes on with output only
            return ""

        async def resize() -> None:
            while True:
                w, h = await ch.resizes.get()
                if w > 0 and h > 0:
                    await conn.resize(h, w)

        out = asyncio.ensure_future(until_exit())
        gone = asyncio.ensure_future(ch.gone.wait())
        helpers = [asyncio.ensure_future(resize())]
        if stdin:
            helpers.append(asyncio.ensure_future(copy_in()))
        try:
            await asyncio.wait([out, gone, *helpers], return_when=asyncio.FIRST_COMPLETED)
            for h in helpers:
                if not h.done() or h.cancelled():
                    continue
                if h.exception() is None and h.result() == DETACHED and not out.done():
                    return DETACHED
                # otherwise the helper failed: the shim went, its output ends too
                await asyncio.wait([out, gone], return_when=asyncio.FIRST_COMPLETED)
            return out.result() if out.done() else None
        finally:
            for t in (out, gone, *helpers):
                t.cancel()

    async def _exec(self, req: dict[str, Any], ch: Channels) -> dict[str, Any]:
        tty, stdin = bool(req.get("tty")), bool(req.get("stdin"))
        e = await asyncio.to_thread(self.execs.create, req["container_id"], {
            "Cmd": list(req["cmd"]), "Tty": tty, "AttachStdin": stdin,
            "AttachStdout": bool(req.get("stdout")), "AttachStderr": bool(req.get("stderr"))})
        await asyncio.to_thread(self.execs.begin, e.id)
        mask = (1 if stdin else 0) | (2 if req.get("stdout") else 0) | \
            (4 if req.get("stderr") or tty else 0)
        conn = await spawn_and_connect(self.execs, e, mask)
        try:
            # a size the client sent before the start applies from the first byte
            while not ch.resizes.empty():
                w, h = ch.resizes.get_nowait()
                if w > 0 and h > 0:
                    await conn.resize(h, w)
            await conn.send(START)

            async def output() -> dict[str, Any]:
                while True:
                    kind, payload = await conn.recv()
                    if kind in (OUT, ERR):
                        await ch.out(kind, payload)
                    elif kind == START_RESULT:
                        res = json.loads(payload or b"{}")
                        if res.get("error"):
                            self.execs.failed(e)
                            return status_error(f"exec failed: {res['error']}")
                    elif kind == EXIT:
                        self.execs.finish(e, json.loads(payload or b"{}"))
                        break
                    elif kind == -1:
                        await asyncio.to_thread(self.execs.reconcile, e)
                        break
                code = int(e.exit_code or 0)
                return status_success() if code == 0 else status_exit(code)

            status = await self._pump(conn, ch, stdin, False, output)
        finally:
            conn.close()
        if status is None:  # the client went: its process goes too
            await asyncio.to_thread(self._kill_exec, e.pid)
            return status_error("the client went away")
        return status

    @staticmethod
    def _kill_exec(pid: int) -> None:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def _attach(self, req: dict[str, Any], ch: Channels) -> dict[str, Any]:
        c = await asyncio.to_thread(self.containers.get, req["container_id"])
        if not c.state.get("Running") or c.state.get("Prepared"):
            raise Conflict(f"container {c.id} is not running")
        stdin = bool(req.get("stdin")) and bool(c.config.get("OpenStdin"))
        mask = (1 if stdin else 0) | (2 if req.get("stdout") else 0) | \
            (4 if req.get("stderr") or req.get("tty") else 0)
        conn = await ShimConnection.open(str(self.containers.state_dir(c.id) / "attach.sock"),
                                         mask)

        async def output() -> dict[str, Any]:
            while True:
                kind, payload = await conn.recv()
                if kind in (OUT, ERR):
                    await ch.out(kind, payload)
                elif kind in (EXIT, -1):
                    return status_success()

        try:
            # At the client's end of input, the container's stdin closes only
            # with stdin_once and no tty, and the attach lasts as long as the
            # container; otherwise the attach ends there (containerd's way).
            once = bool(c.config.get("StdinOnce")) and not c.tty
            status = await self._pump(conn, ch, stdin, not once, output)
        finally:
            conn.close()
        return status if isinstance(status, dict) else status_success()

    # --- port-forward --------------------------------------------------------------
    def _forwarder(self, pod: Pod) -> tuple[Any, set[asyncio.Task[None]]]:
        """A port-forward session's stream handler: pairs the data and error
        streams of each connection and forwards them."""
        pairs: dict[str, dict[str, spdy.Stream]] = {}
        tasks: set[asyncio.Task[None]] = set()

        def on_stream(s: spdy.Stream) -> None:
            kind = s.header("streamtype")
            rid = s.header("requestid") or str(s.id)
            if kind not in ("data", "error") or kind in pairs.get(rid, {}):
                s.reset(spdy.REFUSED_STREAM)
                return
            pair = pairs.setdefault(rid, {})
            pair[kind] = s
            if len(pair) == 2:
                del pairs[rid]
                t = asyncio.ensure_future(self._forward(pod, pair["data"], pair["error"]))
                tasks.add(t)
                t.add_done_callback(tasks.discard)

        return on_stream, tasks

    async def _portforward(self, request: web.Request, p: Pending) -> web.StreamResponse:
        offered = request.headers.getall("X-Stream-Protocol-Version", [])
        if offered and _negotiate(offered, (PORTFORWARD,)) is None:
            return self._refuse((PORTFORWARD,))
        pod = await asyncio.to_thread(self.pods.get, p.request["pod_sandbox_id"])
        on_stream, tasks = self._forwarder(pod)
        resp, session, transport = await _upgrade_spdy(
            request, PORTFORWARD if offered else "", on_stream)
        try:
            await session.ended.wait()
        finally:
            for t in list(tasks):
                t.cancel()
            await _end_spdy(session, transport)
        return resp

    async def _portforward_ws(self, request: web.Request, p: Pending) -> web.StreamResponse:
        """Port-forward as newer clients send it over a WebSocket: the same
        SPDY session, its bytes carried in binary messages."""
        proto = TUNNEL_PREFIX + PORTFORWARD
        if proto not in _offered(request):
            return self._refuse((proto,))
        ws = web.WebSocketResponse(protocols=(proto,), max_msg_size=0)
        pod = await asyncio.to_thread(self.pods.get, p.request["pod_sandbox_id"])
        await ws.prepare(request)
        on_stream, tasks = self._forwarder(pod)
        pipe = _WsPipe(ws)
        session = spdy.Session(pipe.send, pipe.drain, server=True, on_stream=on_stream)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    session.feed(msg.data)
        finally:
            session.end()
            for t in list(tasks):
                t.cancel()
            await pipe.close()
            if not ws.closed:
                await ws.close()
        return ws

    async def _dial(self, pod: Pod, port: int) -> tuple[asyncio.StreamReader,
                                                        asyncio.StreamWriter]:
        netns = pod.ns_paths.get("net", "") if pod.network != "node" else ""
        if not netns:  # the host's network: its loopback
            return await asyncio.open_connection("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        err: OSError | None = None
        for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            fd = await asyncio.to_thread(_core.netns_socket, netns, family, socket.SOCK_STREAM)
            sock = socket.socket(family, socket.SOCK_STREAM, fileno=fd)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (addr, port))
            except OSError as e:
                sock.close()
                err = err or e
                continue
            return await asyncio.open_connection(sock=sock)
        assert err is not None
        raise err

    async def _forward(self, pod: Pod, data: spdy.Stream, error: spdy.Stream) -> None:
        try:
            port = int(data.header("port"))
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            await self._pf_error(data, error, f"invalid port {data.header('port')!r}")
            return
        try:
            reader, writer = await self._dial(pod, port)
        except OSError as e:
            await self._pf_error(data, error, f"error forwarding port {port} to pod {pod.id}, "
                                 f"uid : failed to connect to localhost:{port} inside "
                                 f"namespace {pod.id!r}: {e.strerror or e}")
            return

        async def to_pod() -> None:
            while chunk := await data.read():
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        async def from_pod() -> None:
            while chunk := await reader.read(1 << 16):
                await data.write(chunk)
            data.close()

        tasks = [asyncio.ensure_future(to_pod()), asyncio.ensure_future(from_pod())]
        try:
            await asyncio.gather(*tasks)
        except (ConnectionError, OSError):
            pass
        finally:
            for t in tasks:
                t.cancel()
            writer.close()
            if not data.local_closed:
                data.reset()
            error.close()

    @staticmethod
    async def _pf_error(data: spdy.Stream, error: spdy.Stream, msg: str) -> None:
        try:
            await error.write(msg.encode())
        except ConnectionError:
            pass
        error.close()
        data.close()
