"""Published ports: `HostConfig.PortBindings` checked, resolved and reserved.

Each host port is reserved by binding a socket to it in the daemon (as dockerd
does), so a port some other program uses, or another container published,
fails with dockerd's `port is already allocated` before anything is set up;
the packets themselves are DNATed by the kernel and never reach that socket
(rootless: that socket is the forwarder's listener, forward.py).
`-P` and an empty HostPort take the next free port of the kernel's ephemeral
range, as dockerd's port allocator does.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any

from ..errors import DockyardError, InvalidParameter

PROTOS = ("tcp", "udp", "sctp")


class PortAllocated(DockyardError):
    status = 500


@dataclass(frozen=True)
class Binding:
    proto: str
    ctr_port: int
    host_ip: str       # "" = every address
    host_port: int     # 0 = pick one


def parse_port_key(key: str) -> tuple[int, int, str]:
    """`80/tcp`, `8000-8010/udp` -> (first, last, proto)."""
    port, _, proto = key.partition("/")
    proto = proto or "tcp"
    if proto not in PROTOS:
        raise InvalidParameter(f"invalid proto: {proto}")
    lo, _, hi = port.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise InvalidParameter(f'invalid port specification: "{port}"') from None
    if not (0 < a <= 65535 and 0 < b <= 65535) or b < a:
        raise InvalidParameter(f'invalid port specification: "{port}"')
    return a, b, proto


def bindings(port_bindings: dict[str, Any] | None, exposed: dict[str, Any] | None,
             publish_all: bool, default_ip: str) -> list[Binding]:
    """Every (container port, host address, host port) to publish."""
    out: list[Binding] = []
    seen: set[str] = set()
    for key, binds in (port_bindings or {}).items():
        a, b, proto = parse_port_key(key)
        seen.add(f"{a}/{proto}")
        for bind in binds or []:
            hp = str((bind or {}).get("HostPort") or "")
            hip = str((bind or {}).get("HostIp") or "")
            if hp:
                lo, _, hi = hp.partition("-")
                try:
                    hlo, hhi = int(lo), int(hi or lo)
                except ValueError:
                    raise InvalidParameter(f'invalid port specification: "{hp}"') from None
                if not (0 < hlo <= 65535 and 0 < hhi <= 65535):
                    raise InvalidParameter(f'invalid port specification: "{hp}"')
            else:
                hlo = hhi = 0
            for i, cport in enumerate(range(a, b + 1)):
                host = hlo + i if hlo and hhi > hlo else hlo
                out.append(Binding(proto, cport, hip or default_ip, host))
    if publish_all:
        for key in exposed or {}:
            a, b, proto = parse_port_key(key)
            for cport in range(a, b + 1):
                if f"{cport}/{proto}" not in seen:
                    out.append(Binding(proto, cport, default_ip, 0))
    return out


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
            return int(lo), int(hi)
    except (OSError, ValueError):
        return 49153, 60999


class PortReservations:
    """The sockets that hold published host ports, per container."""

    def __init__(self) -> None:
        self._held: dict[str, list[socket.socket]] = {}
        self._next: dict[str, int] = {}

    def _bind(self, proto: str, ip: str, port: int) -> socket.socket:
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        s = socket.socket(fam, kind, socket.IPPROTO_SCTP if proto == "sctp" else 0)
        try:
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.set_inheritable(False)
            s.bind((ip or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), port))
        except BaseException:
            s.close()
            raise
        return s

    def reserve(self, cid: str, name: str, endpoint: str,
                wanted: list[Binding]) -> list[Binding]:
        """Bind every host port (picking free ones for 0); all or nothing."""
        got: list[socket.socket] = []
        out: list[Binding] = []
        try:
            for b in wanted:
                if b.host_port:
                    try:
                        got.append(self._bind(b.proto, b.host_ip, b.host_port))
                    except OSError as e:
                        if e.errno in (errno.EADDRINUSE, errno.EACCES):
                            raise PortAllocated(
                                f"driver failed programming external connectivity on endpoint "
                                f"{name} ({endpoint}): Bind for {b.host_ip or '0.0.0.0'}:"
                                f"{b.host_port} failed: port is already allocated") from None
                        if e.errno == errno.EADDRNOTAVAIL:
                            raise PortAllocated(
                                f"driver failed programming external connectivity on endpoint "
                                f"{name} ({endpoint}): Error starting userland proxy: listen "
                                f"{b.proto} {b.host_ip}:{b.host_port}: bind: cannot assign "
                                f"requested address") from None
                        raise
                    out.append(b)
                else:
                    s, port = self._pick(b)
                    got.append(s)
                    out.append(Binding(b.proto, b.ctr_port, b.host_ip, port))
        except BaseException:
            for s in got:
                s.close()
            raise
        self._held.setdefault(cid, []).extend(got)
        return out

    def _pick(self, b: Binding) -> tuple[socket.socket, int]:
        lo, hi = _ephemeral_range()
        key = b.proto
        start = self._next.get(key, lo)
        n = hi - lo + 1
        for i in range(n):
            port = lo + (start - lo + i) % n
            try:
                s = self._bind(b.proto, b.host_ip, port)
            except OSError:
                continue
            self._next[key] = port + 1 if port < hi else lo
            return s, port
        raise PortAllocated(f"no free host port for {b.ctr_port}/{b.proto} in {lo}-{hi}")

    def sockets(self, cid: str) -> list[socket.socket]:
        """The sockets holding `cid`'s ports, in the order they were reserved
        (the rootless forwarder listens on them)."""
        return list(self._held.get(cid, []))

    def release(self, cid: str) -> None:
        for s in self._held.pop(cid, []):
            s.close()

    def release_all(self) -> None:
        for cid in list(self._held):
            self.release(cid)
