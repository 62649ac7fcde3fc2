"""The Engine API's /plugins endpoints. Dockyard runs no managed plugins
(its volume, network and log drivers are built in), so the list is empty
and every name is unknown, with dockerd's messages; installing one is
refused clearly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ... import filters as f
from ...errors import InvalidParameter, NotFound
from . import json_response

if TYPE_CHECKING:
    from ..api import VersionedApp

PLUGIN_FILTERS = {"capability", "enable"}


async def list_plugins(request: web.Request) -> web.Response:
    flt = f.parse(request.query.get("filters"), PLUGIN_FILTERS)
    for v in flt.get("enable", []):
        if v not in ("true", "false"):
            raise InvalidParameter("Invalid filter 'enable'")
    return json_response([])


async def unknown(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    raise NotFound(f"plugin \"{name}\" not found")


async def install(request: web.Request) -> web.Response:
    raise InvalidParameter("managed plugins are not supported by Dockyard: its volume, "
                           "network and log drivers are built in")


def register(routes: VersionedApp) -> None:
    routes.add("GET", "/plugins", list_plugins)
    routes.add("GET", "/plugins/privileges", install)
    routes.add("POST", "/plugins/pull", install)
    routes.add("POST", "/plugins/create", install)
    for method, suffix in (("GET", "/json"), ("DELETE", ""), ("POST", "/enable"),
                           ("POST", "/disable"), ("POST", "/upgrade"), ("POST", "/push"),
                           ("POST", "/set")):
        routes.add(method, "/plugins/{name:.+}" + suffix, unknown)
