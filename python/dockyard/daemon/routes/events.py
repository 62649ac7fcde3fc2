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


def _exact(flt: dict[str, list[str]], key: str, value: str | None) -> bool:
    return key not in flt or value in flt[key]


def _fuzzy(flt: dict[str, list[str]], key: str, value: str | None) -> bool:
    """A value given or the start of it (IDs by prefix), as dockerd's FuzzyMatch."""
    return key not in flt or any(value is not None and value.startswith(x) for x in flt[key])


def _strip_tag(ref: str | None) -> str | None:
    if ref is None:
        return None
    name, colon, tag = ref.rpartition(":")
    return name if colon and "/" not in tag else ref


def _matches(ev: dict[str, Any], flt: dict[str, list[str]]) -> bool:
    """dockerd's event filter: every filter given must match."""
    actor = ev["Actor"]
    aid, attrs = actor.get("ID", ""), actor.get("Attributes") or {}
    action = ev["Action"]
    if any(x in flt.get("event", []) for x in ("health_status", "exec_create", "exec_start")):
        if not _fuzzy(flt, "event", action):
            return False
    elif not _exact(flt, "event", action):
        return False
    if not (_exact(flt, "type", ev["Type"]) and _exact(flt, "scope", ev.get("scope"))):
        return False
    for kind in ("container", "volume", "network", "daemon", "plugin", "node", "service",
                 "secret", "config"):
        if kind in flt and not (_fuzzy(flt, kind, aid) or _fuzzy(flt, kind, attrs.get("name"))):
            return False
    if "image" in flt:
        name = attrs.get("name" if ev["Type"] == "image" else "image")
        if not any(v in flt["image"] for v in (aid, name, _strip_tag(aid), _strip_tag(name))):
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
