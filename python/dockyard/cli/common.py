"""What every command shares: the client from the global options, Docker's
error output and exit codes, and the autostart of a local daemon."""

from __future__ import annotations

import os
import sys
import time
TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

    from .contexts import DefaultEndpoint

from .client import APIError, Client, ConnectError, TLSOptions, default_host, resolve_host


class Globals:
    """The global options (-H, -c, --tls...) and the client made from them."""

    host: str | None = None
    context: str | None = None
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


def check_host_and_context() -> None:
    """-H and --context together are an error before any command runs."""
    if G.context and G.host:
        fail("conflicting options: cannot specify both --host and --context")


def current_context() -> str:
    """The context commands use (docker's choice; see contextname.current_name)."""
    from .contextname import current_name

    return current_name(G.context, G.host)


def _tls_verify() -> bool:
    return G.tlsverify or bool(os.environ.get("DOCKYARD_TLS_VERIFY")
                               or os.environ.get("DOCKER_TLS_VERIFY"))


def _flag_tls() -> TLSOptions | None:
    """TLS from --tls/--tlsverify and the cert path (the default context's)."""
    verify = _tls_verify()
    if not (G.tls or verify):
        return None
    tls = TLSOptions(verify=verify, cacert=G.tlscacert or _cert_path("ca.pem"),
                     cert=G.tlscert or _cert_path("cert.pem"),
                     key=G.tlskey or _cert_path("key.pem"))
    for p in (tls.cert, tls.key):
        if not (p and os.path.exists(p)):
            tls.cert = tls.key = None
    return tls


def default_endpoint() -> DefaultEndpoint:
    """The `default` context: the host and TLS the options and environment give."""
    from .contexts import ContextError, DefaultEndpoint, parse_host

    tls = _flag_tls()
    host = resolve_host(G.host)
    try:
        host = parse_host(host, default_host())
    except ContextError:
        pass  # a form only Dockyard takes (http://...): shown as given
    files: dict[str, str] = {}
    if tls is not None:
        if not os.path.exists(tls.cacert or ""):
            fail(f"open {tls.cacert}: no such file or directory")
        files["ca.pem"] = tls.cacert or ""
        if tls.cert and tls.key:
            files["cert.pem"], files["key.pem"] = tls.cert, tls.key
    return DefaultEndpoint(host, tls is not None and not tls.verify, files)


def _context_client(name: str) -> Client:
    """The client for a stored context's docker endpoint and its TLS files."""
    from .contexts import ContextError, Contexts, docker_endpoint, is_socket

    store = Contexts(default_endpoint)
    try:
        ep = docker_endpoint(store.get(name))
    except ContextError as e:
        fail(f"Failed to initialize: unable to resolve docker endpoint: {e}")
    host = ep.get("Host") or default_host()
    tls = None
    files = store.tls_paths(name)
    if not is_socket(host) and (files or ep.get("SkipTLSVerify")):
        tls = TLSOptions(verify=not ep.get("SkipTLSVerify"), cacert=files.get("ca"),
                         cert=files.get("cert"), key=files.get("key"))
        if not (tls.cert and tls.key):
            tls.cert = tls.key = None
    return Client(host, tls)


def client() -> Client:
    if G._client is not None:
        return G._client
    check_host_and_context()
    name = current_context()
    if name != "default":
        c = _context_client(name)
    else:
        tls = _flag_tls()
        if tls and tls.key:
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
    """Start a daemon when none answers at the default socket: root's, or
    for an ordinary user their rootless one."""
    host = default_host()
    if c.host != host or os.environ.get("DOCKYARD_NO_AUTOSTART"):
        return
    # No ping first: the first request that finds nobody listening starts it.
    c.on_unreachable = lambda: _autostart(c, host)


def _autostart(c: Client, host: str) -> bool:
    import subprocess

    if os.geteuid() == 0:
        log = "/var/log/dockyard.log"
    else:
        state = os.environ.get("XDG_STATE_HOME") or os.path.join(
            os.path.expanduser("~"), ".local", "state")
        os.makedirs(os.path.join(state, "dockyard"), mode=0o700, exist_ok=True)
        log = os.path.join(state, "dockyard", "daemon.log")
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dockyard", "daemon"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True, close_fds=True)
    print(f"dockyard: no daemon answered at {host}; started one in the background "
          f"(pid {proc.pid}, log {log}); DOCKYARD_NO_AUTOSTART=1 turns this off",
          file=sys.stderr)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if c.ping():
            return True
        time.sleep(0.05)
    return False


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
    return client().host


def daemon_experimental() -> bool | None:
    """Whether the daemon runs with experimental features (None when it
    can't be asked: docker then shows and allows what needs them)."""
    from .client import ConnectError

    try:
        r = client().request("GET", "/_ping", check=False)
    except ConnectError:
        return None
    r.close()
    return r.headers.get("docker-experimental", "").lower() == "true"
