"""The Engine API's /networks endpoints, over the engine."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ... import filters as f
from ...errors import InvalidParameter
from ...network.service import FILTERS
from . import blocking, engine, json_response

if TYPE_CHECKING:
    from ..api import VersionedApp


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: expected an object")
    return body


async def list_networks(request: web.Request) -> web.Response:
    filters = f.parse(request.query.get("filters"), FILTERS)
    return json_response(await blocking(engine(request).networks.list, filters))


async def inspect_network(request: web.Request) -> web.Response:
    eng = engine(request)
    return json_response(await blocking(eng.inspect_network, request.match_info["id"]))


async def create(request: web.Request) -> web.Response:
    body = await _body(request)
    return json_response(await blocking(engine(request).networks.create, body), 201)


async def delete(request: web.Request) -> web.Response:
    await blocking(engine(request).networks.remove, request.match_info["id"])
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    body = await _body(request)
    await blocking(engine(request).connect_network, request.match_info["id"],
                   str(body.get("Container") or ""), body.get("EndpointConfig"))
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    body = await _body(request)
    await blocking(engine(request).disconnect_network, request.match_info["id"],
                   str(body.get("Container") or ""), bool(body.get("Force")))
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    filters = f.parse(request.query.get("filters"), {"label", "label!", "until"})
    filters.pop("until", None)
    deleted = await blocking(engine(request).networks.prune, filters)
    return json_response({"NetworksDeleted": deleted})


def register(routes: VersionedApp) -> None:
    routes.add("GET", "/networks", list_networks)
    routes.add("POST", "/networks/create", create)
    routes.add("POST", "/networks/prune", prune)
    routes.add("GET", "/networks/{id}", inspect_network)
    routes.add("DELETE", "/networks/{id}", delete)
    routes.add("POST", "/networks/{id}/connect", connect)
    routes.add("POST", "/networks/{id}/disconnect", disconnect)
