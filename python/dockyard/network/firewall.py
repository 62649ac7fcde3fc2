"""The packet rules behind bridges and published ports, in an nftables table of
Dockyard's own (`inet dockyard`).

The whole table is rendered from the network service's state and replaced in
one `nft -f` transaction, so a restart, a reload or a crash in between never
leaves half a rule set, duplicates, or anything in other software's tables.
Chain policies are never changed. Published ports are kernel DNAT, not a
proxy process per port, so the container sees the client's own address.

Where another firewall's FORWARD chain drops by default (dockerd sets policy
DROP, so does ufw), an nft accept in our table does not override its drop at
the same hook: the bridges then get ACCEPT rules in iptables' FORWARD as well.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

from . import iptables, nft
from .nft import FirewallError
from .rules import BridgeRules, PortRule, Ruleset

log = logging.getLogger("dockyard.network")

TABLE = "dockyard"

__all__ = ["BridgeRules", "FirewallError", "PortRule", "Ruleset", "apply", "drop_forward_compat",
           "forward_policy_compat", "render", "sysctl"]


def _q(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def render(rs: Ruleset) -> str:
    """The nft script that replaces our table with exactly this state.

    Published ports are elements of maps, not rules: a container's start only
    adds elements (a few hundred microseconds in-process), while deleting a
    rule, a chain or an element costs an RCU grace period in the kernel (4-24
    ms here), which `update_ports` pays only on the stop path.
    """
    t = f"inet {TABLE}"
    names = [b.name for b in rs.bridges]
    out = [f"table {t}", f"delete table {t}", f"table {t} {{",
           "  set bridges { type ifname; "
           + (("elements = { " + ", ".join(_q(n) for n in names) + " } ") if names else "")
           + "}",
           "  map publish-any { type inet_proto . inet_service : ipv4_addr . inet_service; }",
           "  map publish-addr { type ipv4_addr . inet_proto . inet_service : "
           "ipv4_addr . inet_service; }",
           "  set loopback-ports { type ipv4_addr . inet_proto . inet_service; }",
           "  chain publish {",
           "    dnat ip to ip daddr . meta l4proto . th dport map @publish-addr",
           "    dnat ip to meta l4proto . th dport map @publish-any",
           "  }",
           "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;",
           "    fib daddr type local jump publish", "  }",
           "  chain output { type nat hook output priority -100; policy accept;",
           "    fib daddr type local jump publish", "  }",
           "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;"]
    for b in rs.bridges:
        n = _q(b.name)
        for fam, subs in (("ip", b.subnets4), ("ip6", b.subnets6)):
            for s in subs:
                if b.masquerade and not b.internal:
                    out.append(f"    {fam} saddr {s} oifname != {n} masquerade")
                # a published port reached from the container's own network (hairpin)
                out.append(f"    oifname {n} ct status dnat {fam} saddr {s} masquerade")
        # ... or from the host itself, 127.0.0.1 included (route_localnet on the bridge)
        out.append(f"    oifname {n} ct status dnat fib saddr type local masquerade")
    out += ["  }", "  chain forward { type filter hook forward priority filter; "
            "policy accept;"]
    for b in rs.bridges:
        n = _q(b.name)
        if b.internal:
            out.append(f"    iifname {n} oifname != {n} drop")
            out.append(f"    oifname {n} iifname != {n} drop")
        if not b.icc:
            out.append(f"    iifname {n} oifname {n} drop")
        if len(names) > 1:
            # containers on different networks cannot reach each other
            out.append(f"    iifname {n} oifname @bridges oifname != {n} drop")
    out += ["  }", "  chain raw { type filter hook prerouting priority raw; policy accept;",
            # a loopback-published port is for this host only (moby#45610)
            '    iifname != "lo" ip daddr . meta l4proto . th dport @loopback-ports drop']
    for b in rs.bridges:
        for fam, subs in (("ip", b.subnets4), ("ip6", b.subnets6)):
            for s in subs:
                # containers are reached through published ports, not routed to directly
                out.append(f"    {fam} daddr {s} iifname != {_q(b.name)} "
                           'iifname != "lo" fib saddr type != local drop')
    out += ["  }", "}"]
    return "\n".join(out) + "\n" + _elements("add", rs.ports)


def _elements(verb: str, ports: list[PortRule] | set[PortRule]) -> str:
    t = f"inet {TABLE}"
    out = []
    for p in ports:
        if ":" in p.ctr_ip or ":" in p.host_ip:
            continue  # IPv4 only: the container's first IPv4 address is the target
        to = f"{p.ctr_ip} . {p.ctr_port}"
        key = f"{p.proto} . {p.host_port}"
        if p.host_ip in ("", "0.0.0.0"):
            out.append(f"{verb} element {t} publish-any {{ {key} : {to} }}" if verb == "add"
                       else f"{verb} element {t} publish-any {{ {key} }}")
        else:
            k = f"{p.host_ip} . {key}"
            out.append(f"{verb} element {t} publish-addr {{ {k} : {to} }}" if verb == "add"
                       else f"{verb} element {t} publish-addr {{ {k} }}")
            if p.host_ip.startswith("127."):
                out.append(f"{verb} element {t} loopback-ports {{ {k} }}")
    return "".join(line + "\n" for line in out)


def update_ports(added: set[PortRule], removed: set[PortRule]) -> None:
    """Published ports in and out of the maps, the bridges' rules untouched."""
    if backend() == "iptables":
        raise FirewallError("iptables has no port maps: apply the whole rule set")
    script = _elements("delete", removed) + _elements("add", added)
    if script:
        nft.run(script)


def backend() -> str:
    """nftables where it is (libnftables or nft), else iptables; DOCKYARD_FIREWALL
    (nftables|iptables) chooses."""
    forced = os.environ.get("DOCKYARD_FIREWALL")
    if forced in ("nftables", "iptables"):
        return forced
    if nft.available():
        return "nftables"
    if iptables.available():
        return "iptables"
    raise FirewallError("neither nftables nor iptables was found: install nftables, or run "
                        "the daemon with --iptables=false")


def apply(rs: Ruleset) -> None:
    """Replace our rules in one transaction (or remove them when nothing is left)."""
    if backend() == "iptables":
        iptables.apply(rs)
        return
    script = render(rs) if (rs.bridges or rs.ports) else \
        f"table inet {TABLE}\ndelete table inet {TABLE}\n"
    nft.run(script)



def forward_policy_compat(br: str) -> None:
    """Accept a bridge in iptables' FORWARD when that chain's policy drops
    (checked when a bridge is set up, not on every rule change)."""
    ipt = shutil.which("iptables")
    if not ipt or not _forward_drops():
        return
    for rule in (["-i", br], ["-o", br]):
        args = rule + ["-j", "ACCEPT", "-m", "comment", "--comment", "dockyard"]
        if subprocess.run([ipt, "-w", "-C", "FORWARD", *args],
                          capture_output=True).returncode != 0:
            subprocess.run([ipt, "-w", "-I", "FORWARD", *args], capture_output=True)


def _forward_drops() -> bool:
    """Whether iptables' filter FORWARD drops by default, without making
    that table where it doesn't exist (iptables-nft would, just to list it)."""
    chain = nft.output("list chain ip filter FORWARD")
    if chain is not None:
        return "policy drop" in chain
    try:  # iptables-legacy's tables are invisible to nft
        with open("/proc/net/ip_tables_names") as f:
            legacy = "filter" in f.read().split()
    except OSError:
        return False
    if not legacy:
        return False
    r = subprocess.run(["iptables-legacy", "-w", "-S", "FORWARD"], capture_output=True, text=True)
    return r.returncode == 0 and "-P FORWARD DROP" in r.stdout


def drop_forward_compat(bridge: str) -> None:
    ipt = shutil.which("iptables")
    if not ipt or not _forward_drops():
        return
    for rule in (["-i", bridge], ["-o", bridge]):
        subprocess.run([ipt, "-w", "-D", "FORWARD", *rule, "-j", "ACCEPT", "-m", "comment",
                        "--comment", "dockyard"], capture_output=True)


def sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        log.warning("sysctl %s=%s: %s", key, value, e)
