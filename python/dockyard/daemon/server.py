"""The HTTP side of the daemon: the aiohttp app, its middlewares (API version
prefixes, Docker's headers, errors as `{"message": ...}`) and its listeners
(unix sockets with mode 0660 and a group, TCP, and sockets handed over by
systemd for `fd://`)."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import re
import socket
import ssl
from typing import Any

from aiohttp import web

from ..containers.execs import ExecStore
from ..engine import Engine
from ..rootless import rootless_uid
from . import authz, openapi
from .api import API_VERSION, MIN_API_VERSION, SERVER, VersionedApp
from .config import DaemonConfig
from .errors import error_response, from_exception
from .monitor import Monitor
from .routes import (build, container_lifecycle, container_ops, container_streams, containers,
                     distribution, events, exec as execs, images, networks, plugins, swarm,
                     system, volumes)


log = logging.getLogger("dockyard.daemon")
_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")
# Connections waiting to be accepted, as Go's listeners have it: the kernel's
# somaxconn (it caps what is asked). With aiohttp's 128, a burst of clients
# finds the backlog full, and a non-blocking connect to a unix socket (Go's,
# the docker CLI's) fails at once with EAGAIN instead of waiting.
BACKLOG = 65535

# Every route group the daemon serves, in the order their routes are tried.
ROUTE_GROUPS = (system, images, distribution, containers, container_lifecycle,
                container_streams, events, execs, container_ops, networks, volumes, build,
                plugins, swarm)


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@web.middleware
async def api_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPNotFound:
        resp = error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        resp = error_response(404, "page not found")
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - every error becomes Docker's JSON shape
        resp = from_exception(e)
    return resp


async def _docker_headers(request: web.Request, resp: web.StreamResponse) -> None:
    """dockerd's headers on every answer, streams (prepared in their handler) too."""
    if request.get("hijacked"):
        return  # its own headers (see hijack.hijack)
    resp.headers.setdefault("Api-Version", API_VERSION)
    resp.headers.setdefault("Docker-Experimental", "false")
    resp.headers.setdefault("Ostype", "linux")
    resp.headers["Server"] = SERVER


def build_app(engine: Engine, config: DaemonConfig) -> web.Application:
    mws = [api_middleware]
    if config.authorization_plugins:
        mws.append(authz.middleware(config.authorization_plugins))
    app = web.Application(middlewares=mws, client_max_size=0)
    app.on_response_prepare.append(_docker_headers)
    app["engine"] = engine
    app["config"] = config
    app["execs"] = ExecStore(engine.containers)
    app["monitor"] = Monitor(engine.containers, app["execs"])
    routes = VersionedApp()
    for group in ROUTE_GROUPS:
        group.register(routes)
    routes.add("GET", "/openapi.json", openapi.serve)
    app["routes"] = routes.routes
    for method, path, handler in routes.routes:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, r"/v{version:\d+\.\d+}" + path, _checked(handler))
    return app


def _checked(handler: Any) -> Any:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        v = request.match_info["version"]
        if _vtuple(v) > _vtuple(API_VERSION):
            return error_response(400, f"client version {v} is too new. Maximum supported "
                                  f"API version is {API_VERSION}")
        if _vtuple(v) < _vtuple(MIN_API_VERSION):
            return error_response(400, f"client version {v} is too old. Minimum supported "
                                  f"API version is {MIN_API_VERSION}, please upgrade your "
                                  "client to a newer version")
        return await handler(request)

    return wrapper


def _ssl_context(cfg: DaemonConfig) -> ssl.SSLContext | None:
    if not (cfg.tls or cfg.tlsverify):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # TLS 1.2 suites: forward secrecy and AEAD only (no CBC, no RSA or DHE key
    # exchange); TLS 1.3's are all modern.
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    ctx.load_cert_chain(cfg.tlscert or "", cfg.tlskey or "")
    if cfg.tlsverify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cfg.tlscacert or "")
    return ctx


def _unix_socket(path: str, group: str) -> socket.socket:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    gid = 0
    mode = 0o600
    try:
        if rootless_uid() is not None:
            raise KeyError(group)  # the user's own socket: no group to share it with
        gid = grp.getgrnam(group).gr_gid
        mode = 0o660
    except KeyError:
        if rootless_uid() is None:
            log.warning("could not change group %s to %s: group %s not found; the socket "
                        "is root-only", path, group, group)
    os.chown(path, 0, gid)
    os.chmod(path, mode)
    sock.listen(BACKLOG)
    return sock


def activated_sockets() -> list[socket.socket]:
    """The listening sockets systemd passed (socket activation): fds 3.. when
    LISTEN_PID is this process. The variables are dropped, as sd_listen_fds does,
    so that nothing this daemon starts takes them for its own."""
    pid, n = os.environ.pop("LISTEN_PID", ""), os.environ.pop("LISTEN_FDS", "")
    os.environ.pop("LISTEN_FDNAMES", None)
    if not (pid.isdigit() and n.isdigit()) or int(pid) != os.getpid():
        return []
    socks = []
    for fd in range(3, 3 + int(n)):
        os.set_inheritable(fd, False)
        socks.append(socket.socket(fileno=fd))
    return socks


def _fd_sockets(host: str, passed: list[socket.socket]) -> list[socket.socket]:
    """`fd://` is every passed socket; `fd://N` is fd N (the others are closed,
    as dockerd does)."""
    if not passed:
        raise SystemExit("no sockets found via socket activation: make sure the service "
                         "was started by systemd")
    want = host[len("fd://"):]
    if not want:
        return list(passed)
    if not want.isdigit():
        raise SystemExit(f"failed to parse systemd fd address: should be a number: {want}")
    i = int(want) - 3
    if not 0 <= i < len(passed):
        raise SystemExit(f"too few socket activated files passed in by systemd (no fd {want})")
    for j, s in enumerate(passed):
        if j != i:
            s.close()
    return [passed[i]]


def _refuse_plain_tcp(host: str, sslctx: ssl.SSLContext | None, cfg: DaemonConfig) -> None:
    if sslctx is None and not cfg.insecure_tcp:
        raise SystemExit(
            f"refusing to listen on {host} without TLS: pass --tlsverify with "
            "certificates, or --insecure-tcp to accept an unauthenticated root API")
    if sslctx is None:
        log.warning("API listening on %s without TLS: anyone who can reach it is root "
                    "on this host", host)


async def start_listeners(runner: web.AppRunner, cfg: DaemonConfig) -> list[web.BaseSite]:
    sites: list[web.BaseSite] = []
    sslctx = _ssl_context(cfg)
    passed = activated_sockets() if any(h.startswith("fd://") for h in cfg.hosts) else []
    for host in cfg.hosts:
        if host.startswith("unix://"):
            sock = _unix_socket(host[len("unix://"):], cfg.group)
            todo: list[web.BaseSite] = [web.SockSite(runner, sock, backlog=BACKLOG)]
        elif host.startswith("fd://"):
            todo = []  # TLS applies to every passed socket, as in dockerd
            for sock in _fd_sockets(host, passed):
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    _refuse_plain_tcp(host, sslctx, cfg)
                todo.append(web.SockSite(runner, sock, ssl_context=sslctx, backlog=BACKLOG))
        elif host.startswith("tcp://"):
            hp = host[len("tcp://"):].split("/", 1)[0]
            h, _, p = hp.rpartition(":")
            if not _:
                h, p = hp, ""
            port = int(p) if p else (2376 if sslctx else 2375)
            _refuse_plain_tcp(host, sslctx, cfg)
            todo = [web.TCPSite(runner, h or "0.0.0.0", port, ssl_context=sslctx, backlog=BACKLOG,
                                reuse_address=True)]
        else:
            raise SystemExit(f"invalid host: {host}")
        for site in todo:
            await site.start()
            sites.append(site)
        log.info("API listening on %s", host)
    return sites
