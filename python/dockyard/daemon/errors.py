"""One table from exceptions to Engine API responses (`{"message": ...}`)."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3

from aiohttp import web

from ..errors import DockyardError
from ..imageconfig import encode

log = logging.getLogger("dockyard.api")


def error_response(status: int, message: str) -> web.Response:
    # No charset parameter: docker's client compares the media type exactly.
    # The body as dockerd's Go encoder writes it (compact, HTML-safe escapes).
    return web.Response(status=status, body=encode({"message": message}) + b"\n",
                        content_type="application/json")


def no_space(e: BaseException) -> str | None:
    """A full disk's message, dockerd-like ("write /x: no space left on
    device"), from an OSError or SQLite's SQLITE_FULL; None for anything else."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        what = os.strerror(e.errno).lower()
        if e.filename:
            return f"write {e.filename}: {what}"
        # the Rust core's "write big: No space left on device (os error 28)"
        where, sep, _ = (e.strerror or "").rpartition(": ")
        return f"{where}: {what}" if sep else what
    if isinstance(e, sqlite3.OperationalError) and (
            getattr(e, "sqlite_errorcode", 0) & 0xFF) == 13:  # SQLITE_FULL
        return "no space left on device (writing the daemon's database)"
    return None


def from_exception(e: BaseException) -> web.Response:
    if isinstance(e, DockyardError):
        return error_response(e.status, str(e))
    if isinstance(e, web.HTTPException):
        return error_response(e.status, e.reason or "error")
    if isinstance(e, PermissionError):
        return error_response(403, str(e))
    if (full := no_space(e)) is not None:
        log.warning("%s", full)
        return error_response(500, full)
    log.exception("internal error", exc_info=e)
    return error_response(500, f"{type(e).__name__}: {e}")


def message_of(e: BaseException) -> str:
    """The message a client sees for `e` (internal errors are logged too)."""
    if isinstance(e, DockyardError):
        return str(e)
    if (full := no_space(e)) is not None:
        return full
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    log.exception("internal error", exc_info=e)
    return f"{type(e).__name__}: {e}"
