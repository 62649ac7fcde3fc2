"""Image config JSON in the exact shape dockerd writes, so that the bytes (and
so the image ID, their SHA-256) look like Docker's."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

DOCKER_VERSION = "20.10.24-dockyard"

# Go's container.Config field order; the omitempty ones are left out when empty.
_CONFIG_FIELDS: list[tuple[str, Any, bool]] = [
    ("Hostname", "", False), ("Domainname", "", False), ("User", "", False),
    ("AttachStdin", False, False), ("AttachStdout", False, False),
    ("AttachStderr", False, False), ("ExposedPorts", None, True), ("Tty", False, False),
    ("OpenStdin", False, False), ("StdinOnce", False, False), ("Env", None, False),
    ("Cmd", None, False), ("Healthcheck", None, True), ("ArgsEscaped", False, True),
    ("Image", "", False), ("Volumes", None, False), ("WorkingDir", "", False),
    ("Entrypoint", None, False), ("NetworkDisabled", False, True), ("MacAddress", "", True),
    ("OnBuild", None, False), ("Labels", None, False), ("StopSignal", "", True),
    ("StopTimeout", None, True), ("Shell", None, True),
]


def container_config(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """A container config dict in Go field order with Docker's defaults."""
    values = values or {}
    out: dict[str, Any] = {}
    for name, default, omitempty in _CONFIG_FIELDS:
        v = values.get(name, default)
        if omitempty and not v:
            continue
        out[name] = v
    return out


def now_rfc3339() -> str:
    """Go's time.RFC3339Nano in UTC (nanoseconds, trailing zeros trimmed)."""
    t = datetime.now(timezone.utc)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def parse_time(s: str) -> float:
    """Seconds since the epoch from an RFC 3339 time with up to 9 fraction digits."""
    if not s:
        return 0.0
    main, _, rest = s.partition(".")
    frac = ""
    tz = "Z"
    if rest:
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, tz = rest[:i], rest[i:]
    else:
        for sep in ("Z", "+", "-"):
            idx = main.find(sep, 10)
            if idx != -1:
                main, tz = main[:idx], main[idx:]
                break
    if tz == "Z" or not tz:
        tz = "+00:00"
    dt = datetime.fromisoformat(main + tz)
    return dt.timestamp() + (float("0." + frac) if frac else 0.0)


def encode(config: dict[str, Any]) -> bytes:
    """Compact JSON like Go's encoding/json (no spaces, HTML-safe escapes)."""
    s = json.dumps(config, separators=(",", ":"), ensure_ascii=False)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return s.encode()


def imported_config(diff_id: str, comment: str, changes: dict[str, Any] | None,
                    arch: str = "amd64", os_name: str = "linux") -> dict[str, Any]:
    created = now_rfc3339()
    cfg = container_config(changes)
    # dockerd sorts the top-level keys of an imported image's config.
    return {
        "architecture": arch,
        "comment": comment,
        "config": cfg,
        "container_config": container_config(),
        "created": created,
        "docker_version": DOCKER_VERSION,
        "history": [{"created": created, "comment": comment}],
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
