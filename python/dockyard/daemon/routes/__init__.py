"""Engine API route groups, one module per object, each over the Engine."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, TypeVar

from aiohttp import web

from ...engine import Engine

T = TypeVar("T")


def engine(request: web.Request) -> Engine:
    return request.app["engine"]


async def blocking(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run an engine call in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kw)


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None:
        return default
    return v.lower() not in ("", "0", "false", "no")


def qint(request: web.Request, name: str, default: int) -> int:
    """An integer query parameter; a malformed one is the client's error (400)."""
    from ...errors import InvalidParameter

    v = request.query.get(name)
    if not v:
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {v!r} is not an integer") from None


def json_response(data: Any, status: int = 200) -> web.Response:
    import json

    return web.Response(status=status, body=json.dumps(data).encode(),
                        content_type="application/json")
