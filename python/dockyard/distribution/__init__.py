"""Distribution: pulling from and pushing to registries (Registry HTTP API v2 /
OCI distribution), their auth, and where credentials live."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RegistryOptions:
    """What the daemon (or an embedding program) says about registries.

    insecure_registries: `host[:port]` names or CIDRs reached over plain HTTP
    (or HTTPS without verification), as dockerd's `--insecure-registry`;
    localhost and 127.0.0.0/8 are always insecure-allowed, as in Docker.
    certs_dir: per-registry CAs and client certificates, docker's `certs.d`
    convention (`<certs_dir>/<host:port>/ca.crt`, `client.cert`, `client.key`).
    The daemon's SIGHUP reload updates these fields in place.
    """

    insecure_registries: list[str] = field(default_factory=list)
    certs_dir: str = "/etc/dockyard/certs.d"
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    timeout: float = 60.0
    """Seconds a registry may stay silent (connect, or mid-body) before the
    transfer fails."""
    compression_level: int = 2
    """gzip level of pushed layers. With zlib-rs, 2 pushed the bench image
    (325 MB of tar) in 3.8 s against 5.5 s at docker's 6, for blobs 3% larger
    (1: 3.1 s, 13% larger)."""
    loopback_insecure: bool = True
    """Docker always allows 127.0.0.0/8 and localhost insecurely; False makes
    them verified like any registry (strict setups, and the TLS tests)."""
    retries: int = 3
    """Attempts per blob download (5xx, reset or cut connections)."""
