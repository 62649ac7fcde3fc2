"""`--authorization-plugin`: dockerd's authz plugin hook. Every API request is
put to each named plugin (the Docker plugin protocol: JSON over HTTP on the
plugin's unix socket, found as dockerd finds it) before its handler runs; one
plugin saying no answers 403, and a plugin that can't be reached or fails
answers 500, so the API fails closed. The response-side call
(AuthZPlugin.AuthZRes) is not made: responses are streamed, not buffered."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from .errors import error_response

log = logging.getLogger("dockyard.authz")

PLUGIN_DIRS = ("/run/docker/plugins", "/etc/docker/plugins", "/usr/lib/docker/plugins")
MEDIA = "application/vnd.docker.plugins.v1.2+json"
MAX_BODY = 1 << 20  # bodies up to 1 MiB are shown to the plugin, as dockerd does
HIDDEN_HEADERS = {"authorization", "x-registry-config", "x-registry-auth"}


class PluginError(Exception):
    pass


def find_plugin(name: str) -> str:
    """The plugin's address (unix:// or tcp://), as dockerd's plugin registry
    looks it up: a socket, then a .spec (an address) or .json ({"Addr": ...}) file."""
    if not name or "/" in name or name.startswith("."):
        raise PluginError(f"plugin {name!r} not found")
    for d in PLUGIN_DIRS:
        for sock in (f"{d}/{name}.sock", f"{d}/{name}/{name}.sock"):
            if os.path.exists(sock):
                return f"unix://{sock}"
        for ext in (".spec", ".json"):
            for p in (f"{d}/{name}{ext}", f"{d}/{name}/{name}{ext}"):
                try:
                    text = open(p).read()
                except OSError:
                    continue
                addr = json.loads(text).get("Addr", "") if ext == ".json" else text.strip()
                if addr:
                    return addr
    raise PluginError(f"plugin {name!r} not found")


async def _call(addr: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /<method> to the plugin; its JSON answer."""
    u = urlparse(addr)
    if u.scheme == "unix":
        reader, writer = await asyncio.open_unix_connection(u.path)
    elif u.scheme in ("tcp", "http", "https"):
        reader, writer = await asyncio.open_connection(
            u.hostname, u.port, ssl=ssl.create_default_context() if u.scheme == "https" else None)
    else:
        raise PluginError(f"unsupported plugin address {addr}")
    try:
        data = json.dumps(body).encode()
        writer.write(f"POST /{method} HTTP/1.1\r\nHost: plugin\r\nAccept: {MEDIA}\r\n"
                     f"Content-Type: {MEDIA}\r\nContent-Length: {len(data)}\r\n"
                     "Connection: close\r\n\r\n".encode() + data)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if b"transfer-encoding: chunked" in head.lower():
        payload = _unchunk(payload)
    if status != [b"200"]:
        raise PluginError(f"{method}: {payload.decode(errors='replace').strip()}")
    return json.loads(payload or b"{}")


def _unchunk(b: bytes) -> bytes:
    out = b""
    while b:
        size, _, rest = b.partition(b"\r\n")
        n = int(size.split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out, b = out + rest[:n], rest[n + 2:]
    return out


class Authz:
    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.addrs: dict[str, str] = {}

    async def _addr(self, name: str) -> str:
        """Found and activated once (dockerd does so lazily too)."""
        if name not in self.addrs:
            addr = find_plugin(name)
            act = await _call(addr, "Plugin.Activate", {})
            if "authz" not in (act.get("Implements") or []):
                raise PluginError(f"plugin {name} does not implement authz")
            self.addrs[name] = addr
        return self.addrs[name]

    async def request_doc(self, request: web.Request) -> dict[str, Any]:
        body = None
        ln = request.content_length or 0
        if (request.headers.get("Content-Type") == "application/json" and 0 < ln < MAX_BODY
                and not request.path.endswith("/auth")):
            # aiohttp keeps what read() returned for the handler
            body = base64.b64encode(await request.read()).decode()
        user, method = "", ""
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        if cert:
            # dockerd: the client certificate's common name, authenticated by TLS
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        user, method = v, "TLS"
        doc: dict[str, Any] = {"User": user, "UserAuthNMethod": method}
        doc = {k: v for k, v in doc.items() if v}  # omitted when empty, as dockerd's
        doc.update(RequestMethod=request.method, RequestUri=request.path_qs)
        if body is not None:
            doc["RequestBody"] = body
        # Go keeps Host out of the header map
        doc["RequestHeaders"] = {k: v for k, v in request.headers.items()
                                 if k.lower() not in HIDDEN_HEADERS and k.lower() != "host"}
        return doc

    async def check(self, request: web.Request) -> web.Response | None:
        """None when every plugin allows the request, else the error response."""
        doc = await self.request_doc(request)
        for name in self.names:
            try:
                res = await _call(await self._addr(name), "AuthZPlugin.AuthZReq", doc)
            except (OSError, ValueError, PluginError) as e:
                log.warning("authorization plugin %s: %s", name, e)
                return error_response(500, f"plugin {name} failed with error: {e}")
            if res.get("Err"):
                return error_response(500, f"plugin {name} failed with error: {res['Err']}")
            if not res.get("Allow"):
                return error_response(403, f"authorization denied by plugin {name}: "
                                      f"{res.get('Msg', '')}")
        return None


def middleware(names: list[str]) -> Any:
    authz = Authz(names)

    @web.middleware
    async def authz_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        denied = await authz.check(request)
        return denied if denied is not None else await handler(request)
    return authz_middleware
