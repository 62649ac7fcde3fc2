"""Docker's JSON progress messages, as pulls and pushes emit them (the docker
CLI draws its own bars from `progressDetail`; `progress` is the text form)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from ..units import human_size

Progress = Callable[[dict[str, Any]], None]


class ClientGone(Exception):
    """The progress sink failed: whoever asked for the transfer went away."""


def bar(current: int, total: int) -> str:
    """`[=====>     ]  1.2MB/3.4MB`, as docker's JSONProgress renders it."""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    return (f"[{'=' * pct}>{' ' * (50 - pct)}] "
            f"{human_size(current):>8}/{human_size(total)}")


class Reporter:
    """Thread-safe, throttled emitter of per-layer progress."""

    def __init__(self, sink: Progress | None, interval: float = 0.1) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self.interval = interval

    def __call__(self, msg: dict[str, Any]) -> None:
        if self._sink is not None:
            with self._lock:
                try:
                    self._sink(msg)
                except Exception as e:  # noqa: BLE001 - a closed client connection, mostly
                    raise ClientGone(f"progress could not be delivered: {e}") from e

    def status(self, status: str, id: str | None = None) -> None:
        m: dict[str, Any] = {"status": status}
        if id is not None:
            m["progressDetail"] = {}
            m["id"] = id
        self(m)

    def progress(self, status: str, id: str, current: int, total: int,
                 force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last.get(id, 0.0) < self.interval:
            return
        self._last[id] = now
        self({"status": status, "progressDetail": {"current": current, "total": total},
              "progress": bar(current, total), "id": id})
