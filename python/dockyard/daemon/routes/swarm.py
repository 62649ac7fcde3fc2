"""The swarm-mode endpoints, answered as by a dockerd that is in no swarm:
Dockyard is a single-host engine (clients such as docker-py's test suite
tear down with `POST /swarm/leave`, list services, nodes, secrets... and
expect exactly these answers). A request dockerd rejects before it asks
the cluster (a bad `version`, logs without a stream) gets that error first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

from aiohttp import web

from ..errors import error_response

if TYPE_CHECKING:
    from ..api import VersionedApp

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
               'join" to connect this node to swarm and try again.')

Handler = Callable[[web.Request], Awaitable[web.Response]]


async def leave(request: web.Request) -> web.Response:
    return error_response(503, "This node is not part of a swarm")


async def not_manager(request: web.Request) -> web.Response:
    return error_response(503, NOT_MANAGER)


async def unsupported(request: web.Request) -> web.Response:
    return error_response(503, "swarm mode is not supported by Dockyard, a single-host engine")


def _parse_uint(v: str) -> str | None:
    """Go's strconv.ParseUint(v, 10, 64) error text, None when `v` parses."""
    if not v.isascii() or not v.isdigit():
        return f'strconv.ParseUint: parsing "{v}": invalid syntax'
    if int(v) >= 1 << 64:
        return f'strconv.ParseUint: parsing "{v}": value out of range'
    return None


def versioned(kind: str, detailed: bool) -> Handler:
    """An update: dockerd parses `version` first (400), then asks the cluster."""
    async def handler(request: web.Request) -> web.Response:
        v = request.query.get("version", "")
        err = _parse_uint(v)
        if err:
            return error_response(400, f"invalid {kind} version '{v}': {err}" if detailed
                                  else f"invalid {kind} version")
        return error_response(503, NOT_MANAGER)
    return handler


def _true(v: str | None) -> bool:
    # dockerd's httputils.BoolValue
    return (v or "").strip().lower() not in ("", "0", "no", "false", "none")


async def logs(request: web.Request) -> web.Response:
    if not (_true(request.query.get("stdout")) or _true(request.query.get("stderr"))):
        return error_response(500, "Bad parameters: you must choose at least one stream")
    return error_response(503, NOT_MANAGER)


def register(routes: VersionedApp) -> None:
    routes.add("POST", "/swarm/leave", leave)
    routes.add("POST", "/swarm/init", unsupported)
    routes.add("POST", "/swarm/join", unsupported)
    routes.add("GET", "/swarm", not_manager)
    routes.add("GET", "/swarm/unlockkey", not_manager)
    routes.add("POST", "/swarm/unlock", not_manager)
    routes.add("POST", "/swarm/update", versioned("swarm", True))
    for kind, detailed in (("service", True), ("node", True), ("secret", False),
                           ("config", False)):
        base = f"/{kind}s"
        routes.add("GET", base, not_manager)
        routes.add("GET", base + "/{id}", not_manager)
        routes.add("POST", base + "/{id}/update", versioned(kind, detailed))
        routes.add("DELETE", base + "/{id}", not_manager)
        if kind != "node":
            routes.add("POST", base + "/create", not_manager)
    routes.add("GET", "/services/{id}/logs", logs)
    routes.add("GET", "/tasks", not_manager)
    routes.add("GET", "/tasks/{id}", not_manager)
    routes.add("GET", "/tasks/{id}/logs", logs)

