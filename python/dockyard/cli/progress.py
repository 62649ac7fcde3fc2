"""Showing Docker's JSON progress stream (pull, push): on a terminal a live
table with a bar per layer (rich), elsewhere one line per status change, as
the docker CLI prints them."""

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


def _render_plain(msgs: Iterable[dict[str, Any]], out) -> dict[str, Any]:
    aux: dict[str, Any] = {}
    for m in msgs:
        _check(m)
        if "aux" in m:
            aux = m["aux"] or {}
            continue
        detail = m.get("progressDetail") or {}
        if detail.get("current") is not None:
            continue  # bars are for terminals
        status = m.get("status", "")
        out.write(f"{m['id']}: {status}\n" if m.get("id") else f"{status}\n")
        out.flush()
    return aux


class _Board:
    """The live part: one row per layer, in the order layers appeared."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, int | None, int | None]] = {}

    def update(self, id: str, status: str, current: int | None, total: int | None) -> None:
        self.rows[id] = (status, current, total)

    def __rich__(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        t = Table.grid(padding=(0, 1))
        t.add_column(no_wrap=True)
        t.add_column(no_wrap=True)
        t.add_column(width=40)
        t.add_column(no_wrap=True)
        for id, (status, cur, total) in self.rows.items():
            if cur is not None:
                bar = ProgressBar(total=total or None, completed=cur, width=40)
                size = (f"{human_size(cur)}/{human_size(total)}" if total
                        else human_size(cur))
                t.add_row(f"{id}:", status, bar, size)
            else:
                t.add_row(f"{id}:", status, "", "")
        return t


def _render_live(msgs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    from rich.console import Console
    from rich.live import Live

    from .client import message_error

    console = Console(highlight=False)
    board = _Board()
    aux: dict[str, Any] = {}
    with Live(board, console=console, refresh_per_second=12, transient=False) as live:
        for m in msgs:
            if message_error(m) is not None:
                live.refresh()
                _check(m)
            if "aux" in m:
                aux = m["aux"] or {}
                continue
            status = m.get("status", "")
            if m.get("id") and ("progressDetail" in m):
                d = m.get("progressDetail") or {}
                board.update(m["id"], status, d.get("current"), d.get("total"))
            elif m.get("id"):
                live.console.print(f"{m['id']}: {status}", markup=False)
            else:
                live.console.print(status, markup=False)
    return aux


def show(msgs: Iterable[dict[str, Any]], quiet: bool = False) -> dict[str, Any]:
    """Consume the stream; returns the last `aux` payload. Raises StreamError."""
    if quiet:
        aux: dict[str, Any] = {}
        for m in msgs:
            _check(m)
            if "aux" in m:
                aux = m["aux"] or {}
        return aux
    if sys.stdout.isatty():
        return _render_live(msgs)
    return _render_plain(msgs, sys.stdout)
