"""One table from exceptions to Engine API responses (`{"message": ...}`)."""

from __future__ import annotations

import logging

from aiohttp import web

from ..errors import DockyardError
from ..imageconfig import encode

log = logging.getLogger("dockyard.api")


def error_response(status: int, message: str) -> web.Response:
    # No charset parameter: docker's client compares the media type exactly.
    # The body as dockerd's Go encoder writes it (compact, HTML-safe escapes).
    return web.Response(status=status, body=encode({"message": message}) + b"\n",
                        content_type="application/json")


def from_exception(e: BaseException) -> web.Response:
    if isinstance(e, DockyardError):
        return error_response(e.status, str(e))
    if isinstance(e, web.HTTPException):
        return error_response(e.status, e.reason or "error")
    if isinstance(e, PermissionError):
        return error_response(403, str(e))
    log.exception("internal error", exc_info=e)
    return error_response(500, f"{type(e).__name__}: {e}")


def message_of(e: BaseException) -> str:
    """The message a client sees for `e` (internal errors are logged too)."""
    if isinstance(e, DockyardError):
        return str(e)
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    log.exception("internal error", exc_info=e)
    return f"{type(e).__name__}: {e}"
