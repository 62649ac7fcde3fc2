"""What every command shares: the client from the global options, Docker's
error output and exit codes, and the autostart of a local daemon."""

from __future__ import annotations

import os
import sys
import time
TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

from .client import DEFAULT_HOST, APIError, Client, ConnectError, TLSOptions, resolve_host


class Globals:
    """The global options (-H, --tls...) and the client made from them."""

    host: str | None = None
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None
    debug: bool = False
    _client: Client | None = None


G = Globals()


def _cert_path(name: str) -> str:
    base = os.environ.get("DOCKYARD_CERT_PATH") or os.environ.get("DOCKER_CERT_PATH") or \
        os.path.expanduser("~/.docker")
    return os.path.join(base, name)


def client() -> Client:
    if G._client is not None:
        return G._client
    verify = G.tlsverify or bool(os.environ.get("DOCKYARD_TLS_VERIFY")
                                 or os.environ.get("DOCKER_TLS_VERIFY"))
    tls = None
    if G.tls or verify:
        tls = TLSOptions(verify=verify, cacert=G.tlscacert or _cert_path("ca.pem"),
                         cert=G.tlscert or _cert_path("cert.pem"),
                         key=G.tlskey or _cert_path("key.pem"))
        for p in (tls.cert, tls.key):
            if not (p and os.path.exists(p)):
                tls.cert = tls.key = None
        if tls.key:
            mode = os.stat(tls.key).st_mode & 0o777
            if mode & 0o077:
                print(f"WARNING: private key {tls.key} is readable by others (mode "
                      f"{mode:04o}); keys should be 0400 and certificates 0444",
                      file=sys.stderr)
    c = Client(G.host, tls)
    _maybe_autostart(c)
    G._client = c
    return c


def _maybe_autostart(c: Client) -> None:
    """Start a daemon when none answers at the default socket and we're root."""
    if c.host != DEFAULT_HOST or os.environ.get("DOCKYARD_NO_AUTOSTART"):
        return
    if os.geteuid() != 0 or os.path.exists(DEFAULT_HOST[len("unix://"):]) and c.ping():
        return
    if c.ping():
        return
    import subprocess

    log = "/var/log/dockyard.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dockyard", "daemon"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True, close_fds=True)
    print(f"dockyard: no daemon answered at {DEFAULT_HOST}; started one in the background "
          f"(pid {proc.pid}, log {log}); DOCKYARD_NO_AUTOSTART=1 turns this off",
          file=sys.stderr)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return
        if c.ping():
            return
        time.sleep(0.05)


def fail(msg: str, code: int = 1) -> NoReturn:
    print(msg, file=sys.stderr)
    raise SystemExit(code)


def call(fn: Callable[[], Any], code: int = 1) -> Any:
    """Run an API call, turning errors into Docker's messages and exit codes."""
    try:
        return fn()
    except APIError as e:
        fail(f"Error response from daemon: {e.message}", code)
    except ConnectError as e:
        fail(str(e), code)


def host_for_display() -> str:
    return resolve_host(G.host)
