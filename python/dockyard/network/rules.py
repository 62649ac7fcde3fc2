"""What the packet rules are made from: Dockyard's bridges and published ports,
rendered by either backend (firewall.py for nftables, iptables.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BridgeRules:
    name: str
    subnets4: tuple[str, ...] = ()
    subnets6: tuple[str, ...] = ()
    internal: bool = False
    icc: bool = True
    masquerade: bool = True


@dataclass(frozen=True)
class PortRule:
    proto: str          # tcp | udp | sctp
    host_ip: str        # "" or 0.0.0.0: every host address
    host_port: int
    ctr_ip: str
    ctr_port: int
    bridge: str


@dataclass
class Ruleset:
    bridges: list[BridgeRules] = field(default_factory=list)
    ports: list[PortRule] = field(default_factory=list)
