"""`docker search`: the v1 search API where a registry offers it (Docker Hub),
else the registry's `_catalog` filtered by the term (self-hosted registries)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from ..errors import InvalidParameter, RegistryError
from . import RegistryOptions
from .auth import AuthConfig
from .client import Session, error_text
from .endpoints import DEFAULT_DOMAIN

HUB_SEARCH = "https://index.docker.io/v1/search"
CATALOG_PAGE = 1000
CATALOG_MAX = 20000


def split_term(term: str) -> tuple[str, str]:
    """("registry domain", "what to look for"): a first component with a dot
    or a port, or `localhost`, names the registry, as in references."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return (DEFAULT_DOMAIN if first in ("docker.io", "index.docker.io") else first), rest
    return DEFAULT_DOMAIN, term


def _bool_filter(filters: dict[str, list[str]], key: str) -> bool | None:
    vals = filters.get(key)
    if not vals:
        return None
    v = vals[-1].lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidParameter(f"invalid filter '{key}={vals[-1]}'")


def search(options: RegistryOptions, term: str, limit: int, filters: dict[str, list[str]],
           auth: AuthConfig | None) -> list[dict[str, Any]]:
    if not 1 <= limit <= 100:
        raise InvalidParameter(f"limit {limit} is outside the range of [1, 100]")
    for key in filters:
        if key not in ("stars", "is-official", "is-automated"):
            raise InvalidParameter(f"invalid filter '{key}'")
    min_stars = 0
    if filters.get("stars"):
        try:
            min_stars = int(filters["stars"][-1])
        except ValueError:
            raise InvalidParameter(f"invalid filter 'stars={filters['stars'][-1]}'") from None
    official = _bool_filter(filters, "is-official")
    automated = _bool_filter(filters, "is-automated")

    domain, q = split_term(term)
    s = Session(domain, options, auth or AuthConfig())
    if domain == DEFAULT_DOMAIN:
        results = _v1(s, HUB_SEARCH, q, limit) or []
    else:
        s.ping()
        results = _v1(s, "/v1/search", q, limit)
        if results is None:
            results = _catalog(s, domain, q)
    out = []
    for r in results:
        stars = int(r.get("star_count") or 0)
        if stars < min_stars:
            continue
        if official is not None and bool(r.get("is_official")) != official:
            continue
        if automated is not None and bool(r.get("is_automated")) != automated:
            continue
        out.append({"star_count": stars, "is_official": bool(r.get("is_official")),
                    "name": r.get("name", ""), "is_automated": bool(r.get("is_automated")),
                    "description": r.get("description") or ""})
    return out[:limit]


def _v1(s: Session, url: str, q: str, limit: int) -> list[dict[str, Any]] | None:
    """Results of a v1 search, or None where the registry has no such API."""
    full = f"{url}?{urllib.parse.urlencode({'q': q, 'n': limit})}"
    with s.request("GET", full) as r:
        body = r.read()
        if r.status in (404, 405):
            return None
        if r.status != 200:
            raise RegistryError(f"Unexpected status code {r.status}: {error_text(body)}")
    try:
        return list(json.loads(body).get("results") or [])
    except (ValueError, AttributeError):
        return None


def _catalog(s: Session, domain: str, q: str) -> list[dict[str, Any]]:
    s.authorize(["registry:catalog:*"])
    names: list[str] = []
    path = f"/v2/_catalog?n={CATALOG_PAGE}"
    while path and len(names) < CATALOG_MAX:
        with s.request("GET", path) as r:
            body = r.read()
            if r.status in (401, 403):
                raise RegistryError(f"{domain}: the catalog needs authorization: "
                                    f"{error_text(body)}")
            if r.status != 200:
                raise RegistryError(f"{domain} offers no search API and no catalog "
                                    f"(status {r.status}: {error_text(body)})")
            link = r.headers.get("Link", "")
        try:
            names += list(json.loads(body).get("repositories") or [])
        except (ValueError, AttributeError):
            raise RegistryError(f"{domain}: invalid catalog answer") from None
        path = ""
        if link.startswith("<") and 'rel="next"' in link:
            path = link[1:link.index(">")]
    ql = q.lower()
    return [{"name": f"{domain}/{n}", "description": "", "star_count": 0,
             "is_official": False, "is_automated": False}
            for n in names if ql in n.lower()]
