"""Engine errors as gRPC status codes, for every CRI handler."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import grpc

from ..errors import Conflict, DockyardError, InvalidParameter, NotFound, Unauthorized

log = logging.getLogger("dockyard.cri")

CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidParameter, grpc.StatusCode.INVALID_ARGUMENT),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (DockyardError, grpc.StatusCode.UNKNOWN),
]


def rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A handler whose engine errors reach the client as status codes."""

    @functools.wraps(fn)
    def handler(self: Any, req: Any, ctx: grpc.ServicerContext) -> Any:
        try:
            return fn(self, req, ctx)
        except Exception as e:  # noqa: BLE001 - every failure becomes a status
            for kind, code in CODES:
                if isinstance(e, kind):
                    break
            else:
                log.exception("CRI %s failed", fn.__name__)
                code = grpc.StatusCode.INTERNAL
            ctx.abort(code, str(e))  # raises

    return handler
