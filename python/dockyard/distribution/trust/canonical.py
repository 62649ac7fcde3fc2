"""TUF's canonical JSON as notary writes it (docker/go's canonical encoding/json):
keys sorted, no whitespace, HTML characters escaped as Go escapes them. What is
signed is always these bytes of the `signed` object."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029"}


def encode(obj: Any) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if any(c in text for c in _GO_ESCAPES):
        for c, esc in _GO_ESCAPES.items():
            text = text.replace(c, esc)
    return text.encode()


def go_time(t: dt.datetime) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano), UTC."""
    t = t.astimezone(dt.timezone.utc)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def parse_time(s: str) -> dt.datetime:
    """Go's RFC 3339 (nanoseconds cut to microseconds, any offset)."""
    head, sep, rest = s.partition(".")
    if sep:
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        s = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
