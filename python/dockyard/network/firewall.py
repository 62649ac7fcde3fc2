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
           "forward_policy_compat", "remove", "render", "sysctl"]


def _q(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def render(rs: Ruleset) -> str:
    """The nft script that replaces our table with exactly this state."""
    out = [f"table inet {TABLE}", f"delete table inet {TABLE}", f"table inet {TABLE} {{"]
    names = [b.name for b in rs.bridges]
    if names:
        out.append("  set bridges { type ifname; elements = { "
                   + ", ".join(_q(n) for n in names) + " } }")
    out += [
        "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump publish", "  }",
        "  chain output { type nat hook output priority -100; policy accept;",
        "    fib daddr type local jump publish", "  }",
        "  chain publish {",
    ]
    for p in rs.ports:
        fam = "ip6" if ":" in p.ctr_ip else "ip"
        dst = "" if p.host_ip in ("", "0.0.0.0", "::") else f"{fam} daddr {p.host_ip} "
        to = f"[{p.ctr_ip}]" if fam == "ip6" else p.ctr_ip
        out.append(f"    {dst}meta l4proto {p.proto} th dport {p.host_port} "
                   f"dnat {fam} to {to}:{p.ctr_port}")
    out.append("  }")
    out.append("  chain postrouting { type nat hook postrouting priority srcnat; policy accept;")
    for b in rs.bridges:
        for fam, subs in (("ip", b.subnets4), ("ip6", b.subnets6)):
            for s in subs:
                if b.masquerade and not b.internal:
                    out.append(f"    {fam} saddr {s} oifname != {_q(b.name)} masquerade")
                # a published port reached from the container's own network (hairpin)
                out.append(f"    oifname {_q(b.name)} ct status dnat {fam} saddr {s} masquerade")
        # ... or from the host itself, 127.0.0.1 included (route_localnet on the bridge)
        out.append(f"    oifname {_q(b.name)} ct status dnat fib saddr type local masquerade")
    out.append("  }")
    out.append("  chain forward { type filter hook forward priority filter; policy accept;")
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
    out.append("  }")
    out.append("  chain raw { type filter hook prerouting priority raw; policy accept;")
    for p in rs.ports:
        if p.host_ip.startswith("127.") or p.host_ip == "::1":
            # a loopback-published port is for this host only (moby#45610)
            fam = "ip6" if p.host_ip == "::1" else "ip"
            out.append(f'    iifname != "lo" {fam} daddr {p.host_ip} meta l4proto {p.proto} '
                       f"th dport {p.host_port} drop")
    for b in rs.bridges:
        for fam, subs in (("ip", b.subnets4), ("ip6", b.subnets6)):
            for s in subs:
                # containers are reached through published ports, not routed to directly
                out.append(f"    {fam} daddr {s} iifname != {_q(b.name)} "
                           f'iifname != "lo" fib saddr type != local drop')
    out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


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


def remove() -> None:
    if backend() == "iptables":
        iptables.remove()
    else:
        nft.run(f"table inet {TABLE}\ndelete table inet {TABLE}\n")


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
