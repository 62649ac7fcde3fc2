"""Container routes for the records: create, list, inspect, rename, remove,
prune. Starting and stopping are in `container_lifecycle`, the streams
(attach, logs, resize) in `container_streams`."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ... import filters
from ...containers.health import HEALTH_STATUSES, health_status
from ...containers.model import Container
from ...containers.service import ContainerService
from ...errors import InvalidParameter, NotFound
from ...imageconfig import parse_time
from ..errors import error_response
from ..views import HOSTCONFIG_DEFAULTS, container_inspect, container_summary
from . import (blocking, container_service as svc, exec_store, go_fields, json_body,
               json_response, monitor, qbool, qint)

CONTAINER_FILTERS = {"status", "name", "id", "label", "exited", "ancestor", "before", "since",
                     "health", "network", "volume", "publish", "expose", "isolation",
                     "is-task"}


async def _get(request: web.Request) -> Container:
    return await blocking(svc(request).get, request.match_info["id"])


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body")
    # Go matches JSON keys to fields in any case (docker-py sends CPURealtimePeriod)
    body = go_fields(body, CONFIG_FIELDS)
    if isinstance(body.get("HostConfig"), dict):
        body["HostConfig"] = go_fields(body["HostConfig"], HOSTCONFIG_FIELDS)
    _check_types(body, CONFIG_TYPES, "ContainerConfigWrapper")
    _check_string_lists(body)
    if isinstance(body.get("Healthcheck"), dict):
        _check_healthcheck(body["Healthcheck"])
    hostconfig = _host_config(body)
    if isinstance(hostconfig, dict):
        _check_host_numbers(hostconfig)
    networking = body.pop("NetworkingConfig", None) or {}
    try:
        c = await blocking(svc(request).create, body, hostconfig, request.query.get("name"),
                           networking)
    except (TypeError, AttributeError) as e:
        # A value of the wrong JSON type deep inside the body: the client's error.
        raise InvalidParameter(f"invalid container configuration: {e}") from None
    return json_response({"Id": c.id, "Warnings": getattr(c, "warnings", [])}, status=201)


#: Top-level fields that dockerd's ContainerConfigWrapper still reads into the
#: HostConfig when the body has none (old clients; docker-py's `runtime=`).
_LEGACY_HOSTCONFIG = set(HOSTCONFIG_DEFAULTS) | {"VolumeDriver", "Runtime"}


def _host_config(body: dict[str, Any]) -> dict[str, Any]:
    """The HostConfig of a create body, as dockerd decodes it: the top-level
    fields serve when "HostConfig" is absent; next to one, only Memory,
    MemorySwap, CpuShares, CpusetCpus and VolumeDriver fill its zero values."""
    inner = body.pop("HostConfig", None)
    top = {k: body.pop(k) for k in list(body) if k in _LEGACY_HOSTCONFIG}
    if inner is None:
        return top
    for k in ("Memory", "MemorySwap", "CpuShares", "CpusetCpus", "VolumeDriver"):
        if top.get(k) and not inner.get(k):
            inner[k] = top[k]
    return inner


_STR, _BOOL, _OBJ, _LIST = (str,), (bool,), (dict,), (list,)
#: dockerd's Config (with the wrapper's HostConfig/NetworkingConfig) and HostConfig fields.
CONFIG_FIELDS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                 "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
                 "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint",
                 "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
                 "StopTimeout", "Shell", "HostConfig", "NetworkingConfig")
HOSTCONFIG_FIELDS = tuple(HOSTCONFIG_DEFAULTS) + ("Runtime", "VolumeDriver", "Mounts",
                                                  "MaskedPaths", "ReadonlyPaths", "Init")
CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "Hostname": _STR, "Domainname": _STR, "User": _STR, "Image": _STR, "WorkingDir": _STR,
    "StopSignal": _STR, "MacAddress": _STR, "AttachStdin": _BOOL, "AttachStdout": _BOOL,
    "AttachStderr": _BOOL, "Tty": _BOOL, "OpenStdin": _BOOL, "StdinOnce": _BOOL,
    "NetworkDisabled": _BOOL, "ArgsEscaped": _BOOL, "ExposedPorts": _OBJ, "Volumes": _OBJ,
    "Labels": _OBJ, "Healthcheck": _OBJ, "HostConfig": _OBJ, "NetworkingConfig": _OBJ,
    "Env": _LIST, "OnBuild": _LIST, "Shell": _LIST, "Cmd": (list, str),
    "Entrypoint": (list, str), "StopTimeout": (int,),
}
# Config.Healthcheck's fields: their JSON type, and Go's name for it in a decoding error.
HEALTHCHECK_TYPES: dict[str, tuple[type, str]] = {
    "Test": (list, "[]string"), "Interval": (int, "time.Duration"),
    "Timeout": (int, "time.Duration"), "StartPeriod": (int, "time.Duration"),
    "Retries": (int, "int"),
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


def _check_string_lists(body: dict[str, Any]) -> None:
    """Docker's decoding error (400) for a list holding a non-string: Cmd and
    Entrypoint (strslice: the error names its last try, a string), Env,
    OnBuild and Shell."""
    for key in ("Cmd", "Entrypoint", "Env", "OnBuild", "Shell"):
        v = body.get(key)
        if not isinstance(v, list):
            continue
        bad = next((x for x in v if not isinstance(x, str)), _NONE)
        if bad is _NONE:
            continue
        got = "array" if key in ("Cmd", "Entrypoint") else _GO_TYPES.get(type(bad), "value")
        raise InvalidParameter(f"json: cannot unmarshal {got} into Go struct field "
                               f"ContainerConfigWrapper.{key} of type string")


_NONE = object()
#: HostConfig's integer fields and their Go types (dockerd decodes into these).
HOST_INTS: dict[str, str] = {
    **{k: "int64" for k in ("Memory", "MemorySwap", "MemoryReservation", "KernelMemory",
                            "KernelMemoryTCP", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
                            "CpuRealtimePeriod", "CpuRealtimeRuntime", "PidsLimit", "ShmSize",
                            "MemorySwappiness", "CpuCount", "CpuPercent")},
    "BlkioWeight": "uint16", "OomScoreAdj": "int", "IOMaximumIOps": "uint64",
    "IOMaximumBandwidth": "uint64",
}
_INT_RANGE = {"int64": (-(1 << 63), (1 << 63) - 1), "int": (-(1 << 63), (1 << 63) - 1),
              "uint16": (0, (1 << 16) - 1), "uint64": (0, (1 << 64) - 1)}


def _check_host_numbers(hc: dict[str, Any]) -> None:
    """Docker's decoding errors (400) for HostConfig integers: wrong JSON
    type, a fraction, or out of the Go type's range."""
    for key, go in HOST_INTS.items():
        v = hc.get(key)
        if v is None:
            continue
        where = f"into Go struct field HostConfig.HostConfig.{key} of type {go}"
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidParameter(f"json: cannot unmarshal {_GO_TYPES.get(type(v), 'value')} "
                                   f"{where}")
        lo, hi = _INT_RANGE[go]
        if isinstance(v, float) or not lo <= v <= hi:
            shown = repr(v) if isinstance(v, float) else str(v)
            raise InvalidParameter(f"json: cannot unmarshal number {shown} {where}")


def _check_healthcheck(hc: dict[str, Any]) -> None:
    """Docker's decoding error (400) for a Healthcheck field of the wrong JSON type."""
    def fail(v: Any, key: str, go_type: str) -> None:
        raise InvalidParameter(f"json: cannot unmarshal {_GO_TYPES.get(type(v), 'value')} "
                               f"into Go struct field HealthConfig.Healthcheck.{key} of type "
                               f"{go_type}")

    for key, (want, go_type) in HEALTHCHECK_TYPES.items():
        v = hc.get(key)
        if v is not None and (not isinstance(v, want) or isinstance(v, bool)):
            fail(v, key, go_type)
        if key == "Test" and v:
            for a in v:
                if not isinstance(a, str):
                    fail(a, key, "string")


async def list_containers(request: web.Request) -> web.Response:
    s = svc(request)
    flt = filters.parse(request.query.get("filters"), CONTAINER_FILTERS)
    for v in flt.get("health", []):
        if v not in HEALTH_STATUSES:
            raise InvalidParameter(f"Unrecognised filter value for health: {v}")
    show_all = qbool(request, "all")
    limit = qint(request, "limit", -1)

    def work() -> list[dict[str, Any]]:
        cs = s.all()
        # A backstop for exits the monitor missed; the common case (shim alive,
        # no exit.json) is two cheap checks, not a reconcile with its reads.
        stale = [c.id for c in cs if c.state.get("Running") and not c.state.get("Restarting")
                 and (not s.shim_alive(c) or (s.state_dir(c.id) / "exit.json").exists())]
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
        out = [container_summary(s, c) for c in cs]
        if qbool(request, "size"):
            for o in out:
                o["SizeRw"] = s.driver.diff_size(o["Id"], f"{o['Id']}-init")
                o["SizeRootFs"] = o["SizeRw"]
        return out

    return json_response(await blocking(work))


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
    if "health" in f and health_status(c.state) not in f["health"]:
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


async def inspect_container(request: web.Request) -> web.Response:
    s = svc(request)
    c = await _get(request)
    out = container_inspect(s, c)
    ids = [e.id for e in exec_store(request).execs.values() if e.container_id == c.id]
    out["ExecIDs"] = ids or None
    if qbool(request, "size"):
        out["SizeRw"] = await blocking(s.driver.diff_size, c.id, f"{c.id}-init")
        out["SizeRootFs"] = out["SizeRw"]
    return json_response(out)


async def rename(request: web.Request) -> web.Response:
    c = await _get(request)
    await blocking(svc(request).rename, c.id, request.query.get("name", ""))
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    s = svc(request)
    if qbool(request, "link"):
        await blocking(s.remove_link, request.match_info["id"])
        return web.Response(status=204)
    ref = request.match_info["id"]
    force, volumes = qbool(request, "force"), qbool(request, "v")
    m = monitor(request)
    loop = asyncio.get_running_loop()
    known: list[str] = []

    async def forget(cid: str) -> None:
        m.health.forget(cid)

    def work() -> None:
        # One hop to a worker for the lookup and the removal.
        cid = s.get(ref).id
        known.append(cid)
        if cid in m.health.tasks:  # no probe starts while its files go
            asyncio.run_coroutine_threadsafe(forget(cid), loop).result()
        s.remove(cid, force, volumes)

    try:
        await blocking(work)
    except BaseException:
        if known:
            await m.health.update(known[0])  # still there (running, without force)
        raise
    m.removed(known[0])
    return web.Response(status=204)


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


async def checkpoints(request: web.Request) -> web.Response:
    """Checkpoints (CRIU) are experimental in dockerd: this daemon answers as
    one running without experimental features."""
    return error_response(501, "This experimental feature is disabled by default. Start the "
                               "Docker daemon in experimental mode in order to enable it.")


def register(r: Any) -> None:
    r.add("POST", "/containers/create", create)
    r.add("GET", "/containers/json", list_containers)
    r.add("POST", "/containers/prune", prune)
    # a link's name `<parent>/<alias>` names its target (as dockerd's {name:.*})
    r.add("GET", "/containers/{id:.+}/json", inspect_container)
    r.add("POST", "/containers/{id}/rename", rename)
    r.add("GET", "/containers/{id}/checkpoints", checkpoints)
    r.add("POST", "/containers/{id}/checkpoints", checkpoints)
    # before the removal's catch-all
    r.add("DELETE", "/containers/{id}/checkpoints/{checkpoint}", checkpoints)
    r.add("DELETE", "/containers/{id:.+}", remove)
