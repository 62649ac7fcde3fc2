"""The swarm-mode endpoints, answered as by a dockerd that is in no swarm:
Dockyard is a single-host engine (clients such as docker-py's test suite
tear down with `POST /swarm/leave` and expect exactly this)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import error_response

if TYPE_CHECKING:
    from ..api import VersionedApp

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
               'join" to connect this node to swarm and try again.')


async def leave(request: web.Request) -> web.Response:
    return error_response(503, "This node is not part of a swarm")


async def not_manager(request: web.Request) -> web.Response:
    return error_response(503, NOT_MANAGER)


async def unsupported(request: web.Request) -> web.Response:
    return error_response(503, "swarm mode is not supported by Dockyard, a single-host engine")


def register(routes: VersionedApp) -> None:
    routes.add("POST", "/swarm/leave", leave)
    routes.add("POST", "/swarm/init", unsupported)
    routes.add("POST", "/swarm/join", unsupported)
    for path in ("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"):
        routes.add("GET", path, not_manager)
