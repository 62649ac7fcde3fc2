"""The Engine API's /build endpoints, over the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ..api import VersionedApp


async def prune(request: web.Request) -> web.Response:
    """POST /build/prune: Dockyard keeps no build cache (there is no builder
    yet), so there is never anything to delete; `docker system prune` and
    `docker builder prune` get dockerd's empty answer."""
    return web.json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


def register(routes: VersionedApp) -> None:
    routes.add("POST", "/build/prune", prune)
