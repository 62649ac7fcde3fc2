"""IP address management: the pools networks take their subnets from, and the
addresses a subnet hands out (libnetwork's `ipam` and `ipamutils`).

Subnets come from Dockyard's own default pool (10.231.0.0/16 cut into /24s,
never docker0's 172.17.0.0/16), skipping every range already routed on the
host, so a real dockerd or a VPN beside Dockyard keeps its addresses.
Addresses are recorded by the network service in its database, whose unique
index makes a double allocation impossible even across threads.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from ..errors import InvalidParameter, NotFound

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Pool:
    """`--default-address-pool base=10.231.0.0/16,size=24`."""

    base: ipaddress.IPv4Network
    size: int

    @classmethod
    def parse(cls, spec: str | dict[str, object]) -> "Pool":
        if isinstance(spec, str):
            kv = dict(p.split("=", 1) for p in spec.split(",") if "=" in p)
        else:
            kv = {str(k).lower(): str(v) for k, v in spec.items()}
        try:
            base = ipaddress.IPv4Network(kv["base"])
            size = int(kv["size"])
        except (KeyError, ValueError) as e:
            raise InvalidParameter(f"invalid default address pool {spec!r}: {e}") from None
        if not base.prefixlen <= size <= 30:
            raise InvalidParameter(f"invalid default address pool {spec!r}: size {size} "
                                   f"does not fit in {base}")
        return cls(base, size)


DEFAULT_POOLS = (Pool(ipaddress.IPv4Network("10.231.0.0/16"), 24),)


def host_routes() -> list[Net]:
    """The destinations routed on this host (both families), from /proc."""
    nets: list[Net] = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                p = line.split()
                dest = ipaddress.IPv4Address(int(p[1], 16).to_bytes(4, "little"))
                mask = ipaddress.IPv4Address(int(p[7], 16).to_bytes(4, "little"))
                if int(mask) == 0:
                    continue  # the default route overlaps everything
                nets.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    except (OSError, StopIteration):
        pass
    try:
        with open("/proc/net/ipv6_route") as f:
            for line in f:
                p = line.split()
                plen = int(p[1], 16)
                if plen == 0 or p[9] == "lo":
                    continue
                nets.append(ipaddress.IPv6Network(f"{ipaddress.IPv6Address(bytes.fromhex(p[0]))}"
                                                  f"/{plen}", strict=False))
    except OSError:
        pass
    return nets


def choose_subnet(pools: Iterable[Pool], taken: Iterable[Net]) -> ipaddress.IPv4Network:
    """The first subnet of the pools that overlaps no taken range."""
    taken4 = [t for t in taken if t.version == 4]
    for pool in pools:
        for sub in pool.base.subnets(new_prefix=pool.size):
            if not any(sub.overlaps(t) for t in taken4):
                return sub
    raise NotFound("could not find an available, non-overlapping IPv4 address pool among "
                   "the defaults to assign to the network")


def parse_subnet(s: str) -> Net:
    try:
        net = ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid CIDR address: {s}") from None
    return net


def parse_addr(s: str, what: str = "address") -> Addr:
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        raise InvalidParameter(f"invalid {what}: {s}") from None


@dataclass
class Subnet:
    """One IPAM Config entry of a network, as dockerd keeps it."""

    subnet: Net
    gateway: Addr
    ip_range: Net | None = None
    aux: dict[str, str] | None = None

    @classmethod
    def from_config(cls, cfg: dict[str, object]) -> "Subnet":
        sub = parse_subnet(str(cfg["Subnet"]))
        gw = cfg.get("Gateway")
        gateway = parse_addr(str(gw), "gateway") if gw else next(sub.hosts())
        rng = cfg.get("IPRange")
        return cls(sub, gateway, parse_subnet(str(rng)) if rng else None,
                   dict(cfg.get("AuxiliaryAddresses") or {}))  # type: ignore[arg-type]

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen

    def reserved(self) -> set[Addr]:
        r: set[Addr] = {self.gateway}
        for a in (self.aux or {}).values():
            r.add(ipaddress.ip_address(a))
        return r

    def candidates(self) -> Iterable[Addr]:
        """Addresses to hand out, lowest first (dockerd gives .2, .3, ...)."""
        space = self.ip_range or self.subnet
        if space.version == 6:
            # hosts() of a /64 is 2**64 long: walk it lazily from the start
            first = int(space.network_address) + 1
            return (ipaddress.IPv6Address(first + i) for i in range(space.num_addresses - 1))
        return space.hosts()

    def allocate(self, used: set[str], want: str | None = None) -> Addr:
        reserved = self.reserved()
        if want:
            a = parse_addr(want)
            if a not in self.subnet:
                raise InvalidParameter(f"no configured subnet or ip-range contain the IP "
                                       f"address {want}")
            if str(a) in used or a in reserved:
                raise InvalidParameter("Address already in use")
            return a
        for a in self.candidates():
            if str(a) not in used and a not in reserved:
                return a
        raise InvalidParameter(f"no available IPv{self.subnet.version} addresses on this "
                               f"network's address pools: {self.subnet}")


def mac_for(ip: ipaddress.IPv4Address) -> str:
    """Docker's container MAC: 02:42 followed by the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)
