"""GET /events: Docker's event stream (history since `since`, then live until
`until` or the client goes away), with `filters`."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from ... import filters as f
from ...containers.logs import parse_since
from . import engine

EVENT_FILTERS = {"container", "event", "image", "label", "type", "volume", "network",
                 "daemon", "plugin", "node", "service", "secret", "config", "scope"}


# Actions with a suffix ("health_status: healthy", "exec_create: sh -c ..."): a filter
# naming one of these bare matches every event it begins (and then any value is a prefix).
_FUZZY_EVENTS = {"health_status", "exec_create", "exec_start"}


def _matches(ev: dict[str, Any], flt: dict[str, list[str]]) -> bool:
    actor = ev["Actor"]
    attrs = actor.get("Attributes") or {}
    if "type" in flt and ev["Type"] not in flt["type"]:
        return False
    if "event" in flt and ev["Action"] not in flt["event"] and not (
            _FUZZY_EVENTS & set(flt["event"])
            and any(ev["Action"].startswith(x) for x in flt["event"])):
        return False
    if "container" in flt and not (ev["Type"] == "container" and any(
            actor["ID"].startswith(x) or attrs.get("name") == x for x in flt["container"])):
        return False
    if "image" in flt and not any(
            x in (attrs.get("image"), attrs.get("name")) or actor["ID"].startswith(x)
            for x in flt["image"]):
        return False
    for want in flt.get("label", []):
        k, eq, v = want.partition("=")
        if k not in attrs or (eq and attrs[k] != v):
            return False
    return True


async def events(request: web.Request) -> web.StreamResponse:
    log = engine(request).events
    flt = f.parse(request.query.get("filters"), EVENT_FILTERS)
    since = parse_since(request.query.get("since"))
    until = parse_since(request.query.get("until"))
    q = log.subscribe()
    try:
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        await resp.prepare(request)
        if since:
            for ev in log.since(since):
                if (not until or ev["timeNano"] <= until * 1e9) and _matches(ev, flt):
                    await resp.write(json.dumps(ev).encode() + b"\n")
        while True:
            timeout = None
            if until:
                timeout = until - time.time()
                if timeout <= 0:
                    break
            try:
                ev = await asyncio.wait_for(q.get(), timeout)
            except asyncio.TimeoutError:
                break
            if until and ev["timeNano"] > until * 1e9:
                break
            if _matches(ev, flt):
                await resp.write(json.dumps(ev).encode() + b"\n")
        await resp.write_eof()
        return resp
    finally:
        log.unsubscribe(q)


def register(r: Any) -> None:
    r.add("GET", "/events", events)
