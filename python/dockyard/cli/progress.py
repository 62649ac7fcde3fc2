"""Showing Docker's JSON progress stream (pull, push, load): on a terminal
a line per layer rewritten in place, elsewhere one line per status change,
exactly as the docker CLI's jsonmessage package prints them."""

from __future__ import annotations

import sys
from typing import Any, Iterable

from ..units import human_size


class StreamError(Exception):
    """An error reported inside the stream (printed without a prefix)."""


def _check(m: dict[str, Any]) -> None:
    from .client import message_error

    err = message_error(m)
    if err is not None:
        raise StreamError(err)


def _go_duration(seconds: int) -> str:
    """time.Duration.String() for whole seconds: 1h2m3s, 4m0s, 5s."""
    h, rest = divmod(seconds, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def progress_text(d: dict[str, Any], width: int) -> str:
    """jsonmessage.JSONProgress.String(): the bar (when the terminal is wider
    than 110 columns), current/total and the time left."""
    import time

    cur, total = int(d.get("current") or 0), int(d.get("total") or 0)
    units = d.get("units") or ""
    if cur <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(cur):>8}" if not units else f"{cur} {units}"
    pct = min(int(cur / total * 100) // 2, 50)
    bar = f"[{'=' * pct}>{' ' * max(50 - pct, 0)}] " if width > 110 else ""
    if d.get("hidecounts"):
        numbers = ""
    elif not units:
        numbers = (f"{human_size(cur):>8}/{human_size(total)}" if cur <= total
                   else f"{human_size(cur):>8}")
    else:
        numbers = f"{cur}/{total} {units}" if cur <= total else f"{cur} {units}"
    left = ""
    start = int(d.get("start") or 0)
    if cur > 0 and start > 0 and pct < 50 and width > 50:
        per = (time.time() - start) / cur
        left = " " + _go_duration(int((total - cur) * per))
    return bar + numbers + left


def show(msgs: Iterable[dict[str, Any]], quiet: bool = False) -> dict[str, Any]:
    """Consume the stream (pull, push, load) as the docker CLI shows it;
    returns the last `aux` payload. Raises StreamError."""
    aux: dict[str, Any] = {}

    def keep(payload: Any) -> None:
        nonlocal aux
        aux = payload or {}

    def checked() -> Iterable[dict[str, Any]]:
        for m in msgs:
            _check(m)
            yield m

    if quiet:
        for m in checked():
            if "aux" in m:
                keep(m["aux"])
        return aux
    display(checked(), sys.stdout, sys.stdout.isatty(), keep)
    return aux


class JSONError(Exception):
    """An `errorDetail` in a stream (jsonmessage.JSONError): its message, and
    the code the docker CLI exits with (1 when the daemon gives none)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or 1


def _rfc3339_nano_fixed(ns: int) -> str:
    import time

    secs, frac = divmod(ns, 10**9)
    t = time.localtime(secs)
    off = t.tm_gmtoff
    zone = "Z" if off == 0 else "%s%02d:%02d" % ("-" if off < 0 else "+", abs(off) // 3600,
                                                abs(off) % 3600 // 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{frac:09d}" + zone


def display(msgs: Iterable[dict[str, Any]], out, terminal: bool,
            on_aux: Any = None) -> None:
    """jsonmessage.DisplayJSONMessagesStream with every field a message may
    carry (`stream` text as is, `status`, `progress`, `id`, `from`, times):
    build output, and any stream shown as the docker CLI shows it. `aux`
    payloads go to `on_aux`; an `errorDetail` raises JSONError after the
    lines before it are written (a bare `error` field is not one, as in
    docker)."""
    import os

    width = 200
    if terminal:
        try:
            # a terminal that reports no width (a bare pty) gets no bars, as with docker
            width = os.get_terminal_size(out.fileno()).columns
        except (OSError, ValueError, AttributeError):
            width = 200
    ids: dict[str, int] = {}
    for m in msgs:
        if "aux" in m and m["aux"] is not None:
            if on_aux is not None:
                on_aux(m["aux"])
            continue
        mid = m.get("id") or ""
        detail = m.get("progressDetail")
        has_progress = "progressDetail" in m and detail is not None
        diff = 0
        if mid and (has_progress or m.get("progress")):
            if mid not in ids:
                ids[mid] = len(ids)
                if terminal:
                    out.write("\n")
            diff = len(ids) - ids[mid]
            if terminal and diff:
                out.write(f"\x1b[{diff}A")
        else:
            ids = {}
        err = m.get("errorDetail")
        if err is not None:
            if mid and terminal and diff:
                out.write(f"\x1b[{diff}B")
            out.flush()
            if err.get("code") == 401:
                raise JSONError("authentication is required")
            raise JSONError(err.get("message") or "", int(err.get("code") or 0))
        text = progress_text(detail or {}, width) if has_progress else ""
        endl = ""
        line = ""
        if terminal and not m.get("stream") and has_progress:
            out.write("\x1b[2K\r")
            endl = "\r"
        elif has_progress and text:
            continue  # bars are for terminals
        if m.get("timeNano"):
            line += _rfc3339_nano_fixed(int(m["timeNano"])) + " "
        elif m.get("time"):
            line += _rfc3339_nano_fixed(int(m["time"]) * 10**9) + " "
        if mid:
            line += f"{mid}: "
        if m.get("from"):
            line += f"(from {m['from']}) "
        status = m.get("status") or ""
        if has_progress and terminal:
            line += f"{status} {text}{endl}"
        elif m.get("progress"):
            line += f"{status} {m['progress']}{endl}"
        elif m.get("stream"):
            line += f"{m['stream']}{endl}"
        else:
            line += f"{status}{endl}\n"
        out.write(line)
        if mid and terminal and diff:
            out.write(f"\x1b[{diff}B")
        out.flush()
