"""The Engine API's /volumes endpoints, over the engine."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ... import filters as f
from ...errors import InvalidParameter
from ...volumes.service import FILTERS
from . import blocking, engine, json_response, qbool

if TYPE_CHECKING:
    from ..api import VersionedApp


async def list_volumes(request: web.Request) -> web.Response:
    filters = f.parse(request.query.get("filters"), FILTERS)
    return json_response(await blocking(engine(request).volumes.list, filters))


async def create(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        body: Any = json.loads(raw) if raw else {}
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: expected an object")
    for key, kind in (("Name", str), ("Driver", str), ("DriverOpts", dict), ("Labels", dict)):
        if body.get(key) is not None and not isinstance(body[key], kind):
            raise InvalidParameter(f"json: cannot unmarshal into Go struct field "
                                   f"VolumeCreateBody.{key}")
    vol = await blocking(engine(request).volumes.create, body.get("Name") or None,
                         body.get("Driver") or None, body.get("DriverOpts"), body.get("Labels"))
    return json_response(vol, 201)


async def inspect_volume(request: web.Request) -> web.Response:
    return json_response(await blocking(engine(request).volumes.inspect,
                                        request.match_info["name"]))


async def delete(request: web.Request) -> web.Response:
    await blocking(engine(request).volumes.remove, request.match_info["name"],
                   qbool(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    filters = f.parse(request.query.get("filters"), {"label", "label!"})
    return json_response(await blocking(engine(request).volumes.prune, filters))


def register(routes: VersionedApp) -> None:
    routes.add("GET", "/volumes", list_volumes)
    routes.add("POST", "/volumes/create", create)
    routes.add("POST", "/volumes/prune", prune)
    routes.add("GET", "/volumes/{name}", inspect_volume)
    routes.add("DELETE", "/volumes/{name}", delete)
