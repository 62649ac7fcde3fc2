"""Engine API route groups, one module per object (or concern of one), each
over the Engine; they share only what is here and the daemon modules below
them, never each other. `server.build_app` registers them all."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, TypeVar

from aiohttp import web

from ...containers.execs import ExecStore
from ...containers.service import ContainerService
from ...distribution.auth import AuthConfig
from ...engine import Engine
from ...errors import InvalidParameter
from ..monitor import Monitor

T = TypeVar("T")


def engine(request: web.Request) -> Engine:
    return request.app["engine"]


def container_service(request: web.Request) -> ContainerService:
    return engine(request).containers


def monitor(request: web.Request) -> Monitor:
    """The app's watch over running containers (see `daemon.monitor`)."""
    return request.app["monitor"]


def exec_store(request: web.Request) -> ExecStore:
    """The exec instances, kept in the daemon's memory as dockerd keeps them."""
    return request.app["execs"]


def registry_auth(request: web.Request) -> AuthConfig:
    """The credentials a client sends for a registry (`X-Registry-Auth`)."""
    return AuthConfig.from_header(request.headers.get("X-Registry-Auth"))


async def blocking(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run an engine call in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kw)


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None:
        return default
    return v.lower() not in ("", "0", "false", "no")


def qint(request: web.Request, name: str, default: int) -> int:
    """An integer query parameter; a malformed one is the client's error (400)."""
    v = request.query.get(name)
    if not v:
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {v!r} is not an integer") from None


def tty_size(request: web.Request) -> tuple[int, int]:
    """`h` and `w` of a resize: strconv.Atoi's error for text (400); dockerd
    hands the numbers on as unsigned and the terminal keeps 16 bits of each,
    so -1 is 65535 there as here."""
    out = []
    for name in ("h", "w"):
        v = request.query.get(name) or "0"
        try:
            out.append(int(v) & 0xFFFF)
        except ValueError:
            raise InvalidParameter(f'strconv.Atoi: parsing "{v}": invalid syntax') from None
    return out[0], out[1]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(),
                        content_type="application/json")


def go_fields(body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """`body` with its keys named as Go's encoding/json matches them to a
    struct's `fields`: the exact name first, else any case ("detachKeys" is
    DetachKeys, as docker-py sends it). Other keys stay as they are."""
    canon = {f.lower(): f for f in fields}
    out: dict[str, Any] = {}
    for k, v in body.items():
        name = k if k in fields else canon.get(k.lower(), k)
        if name != k and name in body:
            continue  # the exact spelling wins
        out[name] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


_VALUE_START = frozenset(b'{["-0123456789tfn')


def _go_quote_char(c: int) -> str:
    """A byte as Go's JSON errors quote it ('x', '\\x00', '"')."""
    if c == 0x27:
        return "'\\''"
    if 0x20 <= c < 0x7F:
        return f"'{chr(c)}'"
    if c < 0x20 or c == 0x7F:
        return "'" + {9: "\\t", 10: "\\n", 13: "\\r"}.get(c, f"\\x{c:02x}") + "'"
    return f"'{chr(c)}'"


async def json_body(request: web.Request) -> Any:
    """The request's JSON body as Go's decoder takes it: no NaN or Infinity,
    nesting bounded (dockerd's messages, as 400s); None when there is none."""
    if not request.body_exists:  # (read before by the authz hook: read() has it)
        return None
    # Go's decoder stops at the first byte no JSON value starts with: so does
    # this, answering without reading (or holding) the rest of a huge body.
    head = b""
    while chunk := await request.content.readany():
        if head := chunk.lstrip(b" \t\r\n"):  # leading white space is dropped
            break
    if not head:
        return None
    if head[0] not in _VALUE_START:
        raise InvalidParameter(f"invalid character {_go_quote_char(head[0])} looking for "
                               "beginning of value")
    raw = head + await request.content.read()
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidParameter("invalid character '[' exceeded max depth") from None
    except ValueError as e:
        raise InvalidParameter(str(e) if str(e).startswith("invalid character")
                               else f"invalid JSON body: {e}") from None
