"""Where a registry domain is reached: scheme, host and TLS settings.

Docker's rules: `docker.io` is served by `registry-1.docker.io`; a registry
is reached over HTTPS verified against the system CAs plus
`<certs_dir>/<host:port>/ca.crt` (and a client certificate from
`client.cert`/`client.key` there); registries named insecure (by
`--insecure-registry`, or localhost and 127.0.0.0/8 always) are tried over
HTTPS without verification first, then plain HTTP.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import RegistryOptions

if TYPE_CHECKING:  # ssl, socket and ipaddress cost the CLI's start-up ~10 ms
    import ipaddress
    import ssl

DEFAULT_DOMAIN = "docker.io"
INDEX_HOST = "registry-1.docker.io"
INDEX_SERVER = "https://index.docker.io/v1/"  # docker's key for Hub credentials


def api_host(domain: str) -> str:
    return INDEX_HOST if domain in (DEFAULT_DOMAIN, "index.docker.io") else domain


def normalize_server(server: str) -> str:
    """`docker login` server names to a registry domain ("" and Hub's URLs
    are docker.io; a scheme and path are dropped)."""
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    if s in ("", "index.docker.io", "registry-1.docker.io", "docker.io"):
        return DEFAULT_DOMAIN
    return s


def _split_host(domain: str) -> str:
    if domain.startswith("["):
        return domain[1:domain.index("]")]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def is_insecure(domain: str, opts: RegistryOptions) -> bool:
    import ipaddress

    if domain == DEFAULT_DOMAIN:
        return False
    host = _split_host(domain)
    if domain in opts.insecure_registries or host in opts.insecure_registries:
        return True
    if opts.loopback_insecure and host == "localhost":
        return True
    nets = []
    for entry in opts.insecure_registries:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    for ip in _addresses(host):
        if (opts.loopback_insecure and ip.is_loopback) or any(ip in n for n in nets):
            return True
    return False


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    import ipaddress
    import socket

    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(info[4][0]))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class Endpoint:
    domain: str      # as in references: docker.io, 127.0.0.1:5000
    host: str        # what is dialled: registry-1.docker.io, 127.0.0.1:5000
    scheme: str      # https or http
    ssl: ssl.SSLContext | None

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}"


def _tls_context(certs_dir: str, domain: str, verify: bool) -> ssl.SSLContext:
    import ssl

    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    d = os.path.join(certs_dir, domain)
    if os.path.isdir(d):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if name.endswith(".crt") and verify:
                ctx.load_verify_locations(p)
            elif name.endswith(".cert"):
                key = p[: -len(".cert")] + ".key"
                if not os.path.exists(key):
                    raise ssl.SSLError(f"missing key {key} for client certificate {p}")
                ctx.load_cert_chain(p, key)
    return ctx


def candidates(domain: str, opts: RegistryOptions) -> list[Endpoint]:
    """Endpoints to try, in order."""
    host = api_host(domain)
    if not is_insecure(domain, opts):
        return [Endpoint(domain, host, "https", _tls_context(opts.certs_dir, domain, True))]
    return [Endpoint(domain, host, "https", _tls_context(opts.certs_dir, domain, False)),
            Endpoint(domain, host, "http", None)]


# Which candidate answered last time, per domain: plain-HTTP registries would
# otherwise cost a failed TLS handshake on every pull.
_working: dict[str, Endpoint] = {}
_working_lock = threading.Lock()


def remember(ep: Endpoint) -> None:
    with _working_lock:
        _working[ep.domain] = ep


def preferred(domain: str, opts: RegistryOptions) -> list[Endpoint]:
    cands = candidates(domain, opts)
    with _working_lock:
        ep = _working.get(domain)
    if ep is not None and any(c.scheme == ep.scheme for c in cands):
        return [c for c in cands if c.scheme == ep.scheme] + [
            c for c in cands if c.scheme != ep.scheme]
    return cands
