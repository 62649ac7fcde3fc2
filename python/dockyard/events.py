"""The engine's event log (`docker events`): a bounded history for `since`
and live subscribers. Emitting is thread-safe; an asyncio subscriber gets
events on its own loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

HISTORY = 1024


def event(type_: str, action: str, actor: str, attributes: dict[str, str] | None = None
          ) -> dict[str, Any]:
    now = time.time_ns()
    ev: dict[str, Any] = {}
    if type_ in ("container", "image"):
        # the pre-1.22 fields docker's CLI still prints from
        ev.update(status=action, id=actor)
        if type_ == "container" and attributes and "image" in attributes:
            ev["from"] = attributes["image"]
    ev.update(Type=type_, Action=action,
              Actor={"ID": actor, "Attributes": dict(attributes or {})},
              scope="local", time=now // 1_000_000_000, timeNano=now)
    return ev


class EventLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._subs: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []

    def emit(self, type_: str, action: str, actor: str,
             attributes: dict[str, str] | None = None) -> None:
        ev = event(type_, action, actor, attributes)
        with self._lock:
            self._history.append(ev)
            subs = list(self._subs)
        for loop, q in subs:
            try:
                loop.call_soon_threadsafe(q.put_nowait, ev)
            except RuntimeError:  # loop closed
                pass

    def since(self, t: float) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._history if e["timeNano"] >= t * 1e9]

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        with self._lock:
            self._subs.append((asyncio.get_running_loop(), q))
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        with self._lock:
            self._subs = [(lp, x) for lp, x in self._subs if x is not q]
