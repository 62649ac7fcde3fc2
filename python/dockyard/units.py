"""Docker's human-readable sizes and durations (go-units), exactly."""

from __future__ import annotations

import time

_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]


def _go_g(value: float, precision: int) -> str:
    s = f"%.{precision}g" % value
    if "e" in s:
        mant, exp = s.split("e")
        sign = exp[0]
        digits = exp[1:].lstrip("0")
        s = f"{mant}e{sign}{digits.zfill(2)}"
    return s


def human_size(size: float, precision: int = 4) -> str:
    """units.HumanSizeWithPrecision: decimal units, `precision` significant digits."""
    i = 0
    while size >= 1000.0 and i < len(_DECIMAL) - 1:
        size /= 1000.0
        i += 1
    return f"{_go_g(size, precision)}{_DECIMAL[i]}"


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def since(unix: float) -> str:
    return human_duration(time.time() - unix) + " ago"


_DURATION_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_go_duration(s: str) -> int:
    """Go's time.ParseDuration, in nanoseconds; ValueError with Go's message."""
    orig, neg = s, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{orig}"')
    total = 0
    while s:
        i = 0
        while i < len(s) and s[i].isdigit():
            i += 1
        whole, s = s[:i], s[i:]
        frac = ""
        if s[:1] == ".":
            j = 1
            while j < len(s) and s[j].isdigit():
                j += 1
            frac, s = s[1:j], s[j:]
        if not whole and not frac:
            raise ValueError(f'time: invalid duration "{orig}"')
        k = 0
        while k < len(s) and s[k] != "." and not s[k].isdigit():
            k += 1
        if k == 0:
            raise ValueError(f'time: missing unit in duration "{orig}"')
        unit, s = s[:k], s[k:]
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{orig}"')
        scale = _DURATION_UNITS[unit]
        total += int(whole or 0) * scale
        if frac:
            total += int(int(frac) * (scale / 10 ** len(frac)))
        if total > 2**63 - 1:
            raise ValueError(f'time: invalid duration "{orig}"')
    return -total if neg else total


def format_go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 500ms, 1.5s, 1m30s, 1h0m0s."""
    sign, u = ("-" if ns < 0 else ""), abs(ns)

    def frac(v: int, digits: int) -> str:
        f = f"{v:0{digits}d}".rstrip("0")
        return f".{f}" if f else ""

    if u == 0:
        return "0s"
    if u < 1000:
        return f"{sign}{u}ns"
    if u < 10**6:
        return f"{sign}{u // 1000}{frac(u % 1000, 3)}µs"
    if u < 10**9:
        return f"{sign}{u // 10**6}{frac(u % 10**6, 6)}ms"
    secs, rest = divmod(u, 10**9)
    out = f"{secs % 60}{frac(rest, 9)}s"
    mins = secs // 60
    if mins:
        out = f"{mins % 60}m" + out
        if mins // 60:
            out = f"{mins // 60}h" + out
    return sign + out
