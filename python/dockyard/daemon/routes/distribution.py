"""Registry routes that move no image: auth (`docker login`) and search.
Pull and push are image routes (`images`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ... import filters as filter_parse
from ...distribution.auth import AuthConfig
from ...errors import InvalidParameter
from . import blocking, engine, json_response, registry_auth


async def auth(request: web.Request) -> web.Response:
    eng = engine(request)
    try:
        body = await request.json()
    except ValueError:
        raise InvalidParameter("invalid JSON in the request body") from None
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object")
    return json_response(await blocking(eng.login, AuthConfig.from_dict(body)))


async def search(request: web.Request) -> web.Response:
    eng = engine(request)
    q = request.query
    term = q.get("term", "")
    try:
        limit = int(q.get("limit") or 25)
    except ValueError:
        raise InvalidParameter(f"invalid limit {q.get('limit')!r}") from None
    f = filter_parse.parse(q.get("filters"), {"stars", "is-official", "is-automated"})
    return json_response(await blocking(eng.search, term, limit, f, registry_auth(request)))


def register(r: Any) -> None:
    r.add("GET", "/images/search", search)
    r.add("POST", "/auth", auth)
