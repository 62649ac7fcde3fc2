"""Container routes: create, start, stop, kill, restart, wait, attach (hijacked
streams), logs, inspect, list, rename, resize, remove, prune.

The daemon watches every running container's shim with a pidfd; when one
exits it reconciles the record, wakes the waiters and applies the restart
policy (`Monitor`).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from aiohttp import web

from ...containers import logs as jsonlog
from ...containers.attach import EXIT, START, START_RESULT, ShimConnection
from ...containers.model import ZERO_TIME, Container
from ...containers.service import NOT_MODIFIED, ContainerService, StartError
from ...errors import Conflict, InvalidParameter, NotFound
from ...imageconfig import parse_time
from ..streams import hijack
from . import blocking, engine, json_response, qbool, qint

CONTAINER_FILTERS = {"status", "name", "id", "label", "exited", "ancestor", "before", "since",
                     "health", "network", "volume", "publish", "expose", "isolation",
                     "is-task"}


class AttachSession:
    """An attach connection to a shim; a start sent through it is answered on
    it, after the attach is registered (the shim reads one connection in order)."""

    def __init__(self, conn: ShimConnection) -> None:
        self.conn = conn
        self.started: asyncio.Future | None = None
        self.closed = False

    async def start(self) -> dict[str, Any]:
        self.started = asyncio.get_running_loop().create_future()
        await self.conn.send(START)
        return await self.started


class Monitor:
    """Exit watchers, waiters and attach sessions for every container."""

    def __init__(self, svc: ContainerService) -> None:
        self.svc = svc
        self.watching: dict[str, int] = {}
        self.waiters: dict[str, list[tuple[str, asyncio.Future]]] = {}
        self.sessions: dict[str, AttachSession] = {}

    def watch(self, cid: str) -> None:
        if cid in self.watching:
            return
        try:
            c = self.svc.get(cid)
        except NotFound:
            return
        shim = int(c.state.get("ShimPid") or 0)
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(shim)
        except (OSError, ValueError):
            loop.create_task(self._exited(cid))
            return
        self.watching[cid] = fd
        loop.add_reader(fd, lambda: loop.create_task(self._on_readable(cid, fd)))

    async def _on_readable(self, cid: str, fd: int) -> None:
        loop = asyncio.get_running_loop()
        if self.watching.get(cid) != fd:
            return
        loop.remove_reader(fd)
        os.close(fd)
        del self.watching[cid]
        await self._exited(cid)

    async def _exited(self, cid: str) -> None:
        try:
            c = await blocking(self.svc.reconcile, cid)
        except NotFound:
            c = None
        if c is None:  # removed meanwhile (a racing --rm reconcile, a DELETE)
            self._wake(cid, None, removed=True)
            return
        if c.state.get("Running"):
            return
        if getattr(c, "removed", False):
            self._wake(cid, c, removed=False)
            self._wake(cid, c, removed=True)
            return
        self._wake(cid, c, removed=False)
        if self.svc.should_restart(c):
            await asyncio.sleep(0.1)
            if await blocking(self.svc.restart_after_exit, cid):
                self.watch(cid)

    def _wake(self, cid: str, c: Container | None, removed: bool) -> None:
        keep = []
        for cond, fut in self.waiters.pop(cid, []):
            if fut.done():
                continue
            if cond == "removed" and not removed:
                keep.append((cond, fut))
                continue
            code = (c.state.get("ExitCode", 0) if c is not None
                    else self.svc.last_exit_codes.get(cid, 0))
            fut.set_result({"StatusCode": code, "Error": None})
        if keep:
            self.waiters[cid] = keep

    def removed(self, cid: str) -> None:
        fd = self.watching.pop(cid, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
        self._wake(cid, None, removed=True)

    def add_waiter(self, cid: str, cond: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(cid, []).append((cond, fut))
        return fut

    def close(self) -> None:
        loop = asyncio.get_event_loop()
        for fd in self.watching.values():
            try:
                loop.remove_reader(fd)
            except Exception:  # noqa: BLE001
                pass
            os.close(fd)
        self.watching.clear()


def monitor(request: web.Request) -> Monitor:
    return request.app["monitor"]


def svc(request: web.Request) -> ContainerService:
    return engine(request).containers


async def _get(request: web.Request) -> Container:
    return await blocking(svc(request).get, request.match_info["id"])


# --- views ------------------------------------------------------------------------

def _command(c: Container) -> tuple[str, list[str]]:
    args = list(c.config.get("Entrypoint") or []) + list(c.config.get("Cmd") or [])
    return (args[0] if args else ""), args[1:]


def _image_name(c: Container) -> str:
    return c.config.get("Image") or c.image_id


def summary(s: ContainerService, c: Container) -> dict[str, Any]:
    path, args = _command(c)
    # dockerd quotes the arguments that hold a space (daemon/list.go)
    shown = [f"'{a}'" if " " in a else a for a in args]
    return {
        "Id": c.id, "Names": [c.name], "Image": _image_name(c), "ImageID": c.image_id,
        "Command": " ".join([path] + shown), "Created": int(parse_time(c.created)),
        "Ports": [], "Labels": c.config.get("Labels") or {}, "State": c.state["Status"],
        "Status": s.status_text(c),
        "HostConfig": {"NetworkMode": c.hostconfig.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": {}}, "Mounts": _mounts(c),
    }


def _mounts(c: Container) -> list[dict[str, Any]]:
    out = []
    for b in c.hostconfig.get("Binds") or []:
        parts = b.split(":")
        if len(parts) >= 2:
            mode = parts[2] if len(parts) > 2 else ""
            out.append({"Type": "bind", "Source": parts[0], "Destination": parts[1],
                        "Mode": mode, "RW": "ro" not in mode.split(","),
                        "Propagation": "rprivate"})
    return out


def inspect(s: ContainerService, c: Container) -> dict[str, Any]:
    path, args = _command(c)
    cdir = s.container_dir(c.id)
    state = {k: v for k, v in c.state.items() if k not in ("ShimPid", "Prepared",
                                                             "StoppedByUser")}
    hc = dict(_HOSTCONFIG_DEFAULTS)
    hc.update(c.hostconfig)
    drv = s.driver
    return {
        "Id": c.id, "Created": c.created, "Path": path, "Args": args, "State": state,
        "Image": c.image_id, "ResolvConfPath": str(cdir / "resolv.conf"),
        "HostnamePath": str(cdir / "hostname"), "HostsPath": str(cdir / "hosts"),
        "LogPath": str(s.log_path(c.id)), "Name": c.name, "RestartCount": c.restart_count,
        "Driver": drv.name, "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
        "AppArmorProfile": "", "ExecIDs": None, "HostConfig": hc,
        "GraphDriver": {"Data": drv.metadata(c.id) if drv.exists(c.id) else None,
                        "Name": drv.name},
        "Mounts": _mounts(c), "Config": c.config,
        "NetworkSettings": {"Bridge": "", "SandboxID": "", "HairpinMode": False,
                            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                            "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
                            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
                            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
                            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
                            "Networks": {}},
    }


_HOSTCONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no",
                                                                    "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None,
    "CapDrop": None, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [],
    "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None,
    "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
    "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
    "ShmSize": 67108864, "Runtime": "native", "ConsoleSize": [0, 0], "Isolation": "",
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": [], "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
    "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0,
    "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
    "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemory": 0,
    "KernelMemoryTCP": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": False, "PidsLimit": None, "Ulimits": None, "CpuCount": 0,
    "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None,
    "ReadonlyPaths": None, "Init": None,
}


def _matches(s: ContainerService, c: Container, f: dict[str, list[str]]) -> bool:
    st = c.state["Status"]
    if "status" in f and st not in f["status"]:
        return False
    if "name" in f and not any(n.lstrip("/") in c.name for n in f["name"]):
        return False
    if "id" in f and not any(c.id.startswith(i) for i in f["id"]):
        return False
    if "exited" in f and (st != "exited" or str(c.state.get("ExitCode")) not in f["exited"]):
        return False
    if "label" in f:
        labels = c.config.get("Labels") or {}
        for want in f["label"]:
            k, eq, v = want.partition("=")
            if k not in labels or (eq and labels[k] != v):
                return False
    if "ancestor" in f:
        ok = False
        for a in f["ancestor"]:
            try:
                img = s.images.resolve(a)
            except NotFound:
                continue
            if img.id == c.image_id:
                ok = True
        if not ok:
            return False
    for key, before in (("before", True), ("since", False)):
        for ref in f.get(key, []):
            other = s.get(ref)
            a, b = parse_time(c.created), parse_time(other.created)
            if (before and not a < b) or (not before and not a > b):
                return False
    return True


# --- handlers -----------------------------------------------------------------------

async def create(request: web.Request) -> web.Response:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON body: {e}") from None
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body")
    _check_types(body, CONFIG_TYPES, "ContainerConfigWrapper")
    hostconfig = body.pop("HostConfig", None) or {}
    body.pop("NetworkingConfig", None)
    try:
        c = await blocking(svc(request).create, body, hostconfig, request.query.get("name"))
    except (TypeError, AttributeError) as e:
        # A value of the wrong JSON type deep inside the body: the client's error.
        raise InvalidParameter(f"invalid container configuration: {e}") from None
    return json_response({"Id": c.id, "Warnings": []}, status=201)


_STR, _BOOL, _OBJ, _LIST = (str,), (bool,), (dict,), (list,)
CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "Hostname": _STR, "Domainname": _STR, "User": _STR, "Image": _STR, "WorkingDir": _STR,
    "StopSignal": _STR, "MacAddress": _STR, "AttachStdin": _BOOL, "AttachStdout": _BOOL,
    "AttachStderr": _BOOL, "Tty": _BOOL, "OpenStdin": _BOOL, "StdinOnce": _BOOL,
    "NetworkDisabled": _BOOL, "ArgsEscaped": _BOOL, "ExposedPorts": _OBJ, "Volumes": _OBJ,
    "Labels": _OBJ, "Healthcheck": _OBJ, "HostConfig": _OBJ, "NetworkingConfig": _OBJ,
    "Env": _LIST, "OnBuild": _LIST, "Shell": _LIST, "Cmd": (list, str),
    "Entrypoint": (list, str), "StopTimeout": (int,),
}
_GO_TYPES = {dict: "object", list: "array", str: "string", bool: "bool", int: "number",
             float: "number"}


def _check_types(body: dict, types: dict[str, tuple[type, ...]], where: str) -> None:
    """Docker's decoding error (400) for a field of the wrong JSON type."""
    for key, want in types.items():
        v = body.get(key)
        if v is None:
            continue
        ok = isinstance(v, want)
        if int in want and isinstance(v, bool):
            ok = False
        if not ok:
            raise InvalidParameter(f"json: cannot unmarshal {_GO_TYPES.get(type(v), 'value')} "
                                   f"into Go struct field {where}.{key} of type "
                                   f"{_GO_TYPES.get(want[0], want[0].__name__)}")


async def list_containers(request: web.Request) -> web.Response:
    from ... import filters as f

    s = svc(request)
    flt = f.parse(request.query.get("filters"), CONTAINER_FILTERS)
    show_all = qbool(request, "all")
    limit = qint(request, "limit", -1)

    def work() -> list[dict[str, Any]]:
        cs = s.all()
        # A backstop for exits the monitor missed; the common case (shim alive,
        # no exit.json) is two cheap checks, not a reconcile with its reads.
        stale = [c.id for c in cs if c.state.get("Running") and (
            not s.shim_alive(c) or (s.state_dir(c.id) / "exit.json").exists())]
        for cid in stale:
            s.reconcile(cid)
        if stale:
            cs = s.all()
        cs.sort(key=lambda c: parse_time(c.created), reverse=True)
        if not show_all and limit <= 0 and "status" not in flt and "exited" not in flt:
            cs = [c for c in cs if c.state.get("Running")]
        cs = [c for c in cs if _matches(s, c, flt)]
        if limit > 0:
            cs = cs[:limit]
        out = [summary(s, c) for c in cs]
        if qbool(request, "size"):
            for o in out:
                o["SizeRw"] = s.driver.diff_size(o["Id"], f"{o['Id']}-init")
                o["SizeRootFs"] = o["SizeRw"]
        return out

    return json_response(await blocking(work))


async def inspect_container(request: web.Request) -> web.Response:
    from .exec import store as exec_store

    s = svc(request)
    c = await _get(request)
    out = inspect(s, c)
    ids = [e.id for e in exec_store(request).execs.values() if e.container_id == c.id]
    out["ExecIDs"] = ids or None
    if qbool(request, "size"):
        out["SizeRw"] = await blocking(s.driver.diff_size, c.id, f"{c.id}-init")
        out["SizeRootFs"] = out["SizeRw"]
    return json_response(out)


async def start(request: web.Request) -> web.Response:
    s = svc(request)
    c = await _get(request)
    loop = asyncio.get_running_loop()
    session = monitor(request).sessions.get(c.id)

    def release(_c: Container) -> dict[str, Any] | None:
        if session is None or session.closed:
            return None
        return asyncio.run_coroutine_threadsafe(session.start(), loop).result()

    try:
        r = await blocking(s.start, c.id, release)
    except StartError:
        await _settle_after_failed_start(request, c.id)
        raise
    if r == NOT_MODIFIED:
        return web.Response(status=304)
    monitor(request).watch(c.id)
    return web.Response(status=204)


async def _settle_after_failed_start(request: web.Request, cid: str) -> None:
    """Wake the waiters; an AutoRemove container goes, as dockerd removes it."""
    m = monitor(request)
    try:
        c = await blocking(svc(request).get, cid)
    except NotFound:
        return
    m._wake(cid, c, removed=False)
    if c.hostconfig.get("AutoRemove"):
        await blocking(svc(request).remove, cid, True)
        m._wake(cid, c, removed=True)
        # Let the woken `wait` answer before the start error does: the client
        # cancels its wait once start fails, as with dockerd's ordering.
        await asyncio.sleep(0.01)


async def stop(request: web.Request) -> web.Response:
    c = await _get(request)
    t = qint(request, "t", -1) if request.query.get("t") else None
    r = await blocking(svc(request).stop, c.id, t)
    if r == NOT_MODIFIED:
        return web.Response(status=304)
    await _after_exit(request, c.id)
    return web.Response(status=204)


async def _after_exit(request: web.Request, cid: str) -> None:
    """Let the monitor see an exit we caused (stop/kill) before answering."""
    m = monitor(request)
    fd = m.watching.get(cid)
    if fd is not None:
        await m._on_readable(cid, fd)


async def restart(request: web.Request) -> web.Response:
    c = await _get(request)
    t = qint(request, "t", -1) if request.query.get("t") else None
    s = svc(request)
    await blocking(s.stop, c.id, t)
    await _after_exit(request, c.id)
    await blocking(s.start, c.id)
    monitor(request).watch(c.id)
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    c = await _get(request)
    await blocking(svc(request).kill, c.id, request.query.get("signal") or "SIGKILL")
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    s = svc(request)
    c = await _get(request)
    cond = request.query.get("condition") or "not-running"
    if cond not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: {cond}")
    m = monitor(request)
    fut = m.add_waiter(c.id, cond)
    if cond == "not-running":
        c2 = await blocking(s.reconcile, c.id)
        if c2 is None or not (c2.state.get("Running") or c2.state.get("Prepared")):
            if not fut.done():
                fut.set_result({"StatusCode": (c2 or c).state.get("ExitCode", 0),
                                "Error": None})
    # Headers go out now, as dockerd does: clients start the container after.
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    await resp.prepare(request)
    result = await fut
    await resp.write(json.dumps(result).encode() + b"\n")
    await resp.write_eof()
    return resp


async def remove(request: web.Request) -> web.Response:
    s = svc(request)
    c = await _get(request)
    await blocking(s.remove, c.id, qbool(request, "force"), qbool(request, "v"))
    fd = monitor(request).watching.get(c.id)
    if fd is not None:
        monitor(request).removed(c.id)
    else:
        monitor(request).removed(c.id)
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    c = await _get(request)
    await blocking(svc(request).rename, c.id, request.query.get("name", ""))
    return web.Response(status=204)


async def resize(request: web.Request) -> web.Response:
    s = svc(request)
    c = await _get(request)
    if not c.state.get("Running") and not c.state.get("Prepared"):
        raise Conflict(f"Container {c.id} is not running")
    h, w = qint(request, "h", 0), qint(request, "w", 0)
    conn = await ShimConnection.open(str(s.state_dir(c.id) / "attach.sock"), 0)
    try:
        await conn.resize(h, w)
    finally:
        conn.close()
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    s = svc(request)

    def work() -> dict[str, Any]:
        deleted, space = [], 0
        for c in s.all():
            if c.state.get("Running") or c.state.get("Prepared"):
                continue
            try:
                space += s.driver.diff_size(c.id, f"{c.id}-init")
            except Exception:  # noqa: BLE001
                pass
            s.remove(c.id)
            deleted.append(c.id)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": space}

    out = await blocking(work)
    for cid in out["ContainersDeleted"] or []:
        monitor(request).removed(cid)
    return json_response(out)


# --- logs -------------------------------------------------------------------------

async def logs(request: web.Request) -> web.StreamResponse:
    s = svc(request)
    c = await _get(request)
    q = request.query
    out, err = qbool(request, "stdout"), qbool(request, "stderr")
    if not (out or err):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    since, until = jsonlog.parse_since(q.get("since")), jsonlog.parse_since(q.get("until"))
    tail_s = q.get("tail", "all")
    tail = -1 if tail_s in ("", "all") else int(tail_s)
    ts = qbool(request, "timestamps")
    path = s.log_path(c.id)
    recs, offset = await blocking(jsonlog.read, path, out, err, since, until, tail)
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/vnd.docker.raw-stream" if c.tty else \
        "application/vnd.docker.multiplexed-stream"
    await resp.prepare(request)
    await resp.write(b"".join(jsonlog.render(r, c.tty, ts) for r in recs))
    if qbool(request, "follow") and not until:
        while True:
            running = c.state.get("Running") or c.state.get("Prepared")
            new, offset = await blocking(jsonlog.follow_new, path, offset)
            chunk = b"".join(jsonlog.render(r, c.tty, ts) for r in new
                             if jsonlog._wanted(r, out, err, since, until))
            if chunk:
                await resp.write(chunk)
            if not running:
                break
            await asyncio.sleep(0.1)
            try:
                c = await blocking(s.get, c.id)
            except NotFound:
                break
            if not (c.state.get("Running") or c.state.get("Prepared")):
                continue  # one last read after the exit
    await resp.write_eof()
    return resp


# --- attach (hijacked) ----------------------------------------------------------------

class _RawInput:
    """Receives the raw client bytes after the HTTP upgrade."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


class _HalfCloseProtocol(asyncio.Protocol):
    """Wraps aiohttp's protocol on a hijacked connection: EOF from the client
    ends stdin only."""

    def __init__(self, inner: Any, on_eof: Any) -> None:
        self.inner = inner
        self.on_eof = on_eof

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.on_eof()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def _detach_keys(spec: str | None) -> bytes:
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
                       {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch, 0))
        elif len(k) == 1 and k.isascii():
            out.append(ord(k))
        else:
            raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


async def attach(request: web.Request) -> web.StreamResponse:
    s = svc(request)
    c = await _get(request)
    q = request.query
    stream = qbool(request, "stream")
    want_in, want_out, want_err = (qbool(request, "stdin"), qbool(request, "stdout"),
                                   qbool(request, "stderr"))
    keys = _detach_keys(q.get("detachKeys"))
    failed = False
    if stream and not (c.state.get("Running") or c.state.get("Prepared")):
        if c.state.get("FinishedAt", ZERO_TIME) != ZERO_TIME:
            raise Conflict("You cannot attach to a stopped container, start it first")
        try:
            c = await blocking(s.prepare, c.id)
            monitor(request).watch(c.id)
        except StartError:
            # dockerd reports a failed start on the start call: attach succeeds
            # with nothing to stream, and start will fail with the message.
            failed = True
    conn = None
    mask = (1 if want_in else 0) | (2 if want_out else 0) | (4 if want_err else 0)
    if stream and not failed:
        # Connect before answering: the client starts the container as soon
        # as it sees the upgrade, and no output may be lost.
        conn = await ShimConnection.open(str(s.state_dir(c.id) / "attach.sock"), mask)
        session = AttachSession(conn)
        monitor(request).sessions[c.id] = session
    resp, transport = await hijack(request)
    if qbool(request, "logs"):
        recs, _ = await blocking(jsonlog.read, s.log_path(c.id), want_out, want_err)
        transport.write(b"".join(jsonlog.render(r, c.tty, False) for r in recs))
    if conn is None:
        transport.close()
        return resp
    inp = _RawInput()
    proto = request.protocol
    if want_in:
        proto.set_parser(inp)  # type: ignore[union-attr]

    # The client shuts its write side once stdin is done (or at once without
    # -i); output must keep flowing, so a half-close must not close the transport.
    transport.set_protocol(_HalfCloseProtocol(proto, inp.feed_eof))
    stdin_once = bool(c.config.get("StdinOnce"))

    def pump_in():
        # dockerd closes the container's stdin at the client's EOF only for
        # StdinOnce without a tty (a tty session just detaches).
        return conn.pump_stdin(inp.queue, keys if c.tty else b"", stdin_once and not c.tty)

    m = monitor(request)

    async def pump_out() -> str:
        while True:
            kind, payload = await conn.recv()
            if kind in (1, 2):
                transport.write(payload if c.tty else jsonlog.frame(kind, payload))
                if transport.get_write_buffer_size() > 1 << 20:
                    await asyncio.sleep(0)
            elif kind == START_RESULT:
                if session.started is not None and not session.started.done():
                    session.started.set_result(json.loads(payload or b"{}"))
            elif kind == EXIT or kind == -1:
                if session.started is not None and not session.started.done():
                    session.started.set_result({"error": "the container's supervisor went "
                                                "away", "exit_code": 128})
                return "exit"

    tasks = [asyncio.ensure_future(pump_out())]
    if want_in:
        tasks.append(asyncio.ensure_future(pump_in()))
    try:
        while tasks:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            results = {t.result() for t in done if not t.cancelled() and not t.exception()}
            tasks = list(pending)
            if "exit" in results or "detach" in results:
                break
    finally:
        session.closed = True
        if m.sessions.get(c.id) is session:
            del m.sessions[c.id]
        for t in tasks:
            t.cancel()
        conn.close()
        transport.close()
    return resp


def register(r) -> None:
    r.add("POST", "/containers/create", create)
    r.add("GET", "/containers/json", list_containers)
    r.add("POST", "/containers/prune", prune)
    r.add("GET", "/containers/{id}/json", inspect_container)
    r.add("POST", "/containers/{id}/start", start)
    r.add("POST", "/containers/{id}/stop", stop)
    r.add("POST", "/containers/{id}/restart", restart)
    r.add("POST", "/containers/{id}/kill", kill)
    r.add("POST", "/containers/{id}/wait", wait)
    r.add("POST", "/containers/{id}/rename", rename)
    r.add("POST", "/containers/{id}/resize", resize)
    r.add("POST", "/containers/{id}/attach", attach)
    r.add("GET", "/containers/{id}/logs", logs)
    r.add("DELETE", "/containers/{id}", remove)


__all__ = ["register", "Monitor"]
