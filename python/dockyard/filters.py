"""Docker's `filters` query parameter: parsing and matching for images."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from .errors import InvalidParameter

IMAGE_FILTERS = {"dangling", "label", "before", "since", "reference"}


def parse(raw: str | None, accepted: set[str]) -> dict[str, list[str]]:
    """`{"dangling":["true"]}` or the old `{"dangling":{"true":true}}` form."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid filter '{raw}'") from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"invalid filter '{raw}'")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        if k not in accepted:
            raise InvalidParameter(f"invalid filter '{k}'")
        out[k] = list(v.keys()) if isinstance(v, dict) else [str(x) for x in v]
    return out


def labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def _created(img: Any) -> float:
    from .imageconfig import parse_time

    return parse_time(img.config.get("created", ""))


def image_matches(img: Any, f: dict[str, list[str]], by_id: dict[str, Any], store: Any) -> bool:
    from . import reference

    if "dangling" in f:
        vals = {v.lower() for v in f["dangling"]}
        if not vals <= {"true", "false", "1", "0"}:
            raise InvalidParameter(f"Invalid filter 'dangling={f['dangling'][0]}'")
        dangling = bool(vals & {"true", "1"})
        if dangling == bool(img.refs):
            return False
    if "label" in f:
        labels = (img.config.get("config") or {}).get("Labels") or {}
        if not labels_match(labels, f["label"]):
            return False
    for key, cmp in (("before", lambda a, b: a < b), ("since", lambda a, b: a > b)):
        for name in f.get(key, []):
            other = store.resolve(name)
            # full precision, as dockerd compares time.Time values
            if not cmp(_created(img), _created(other)):
                return False
    if "reference" in f:
        ok = False
        for pattern in f["reference"]:
            for r in img.refs:
                fam = reference.familiar_string(r)
                name = fam.split("@")[0].rsplit(":", 1)[0] if "@" not in fam else fam.split("@")[0]
                if fnmatch.fnmatchcase(fam, pattern) or fnmatch.fnmatchcase(name, pattern):
                    ok = True
        if not ok:
            return False
    return True
