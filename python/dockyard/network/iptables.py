"""The fallback where nftables is missing: the same rules as iptables chains of
Dockyard's own (`DOCKYARD-*`), replaced together by one `iptables-restore
--noflush` (declaring a chain there flushes it), and reached from the built-in
chains by one jump each, added once and never duplicated. Only those jumps
touch the built-in chains; their policies are never changed.
"""

from __future__ import annotations

import shutil
import subprocess

from .nft import FirewallError
from .rules import Ruleset

#: (table, built-in chain, our chain)
JUMPS = [
    ("nat", "PREROUTING", "DOCKYARD-PREROUTING"),
    ("nat", "OUTPUT", "DOCKYARD-OUTPUT"),
    ("nat", "POSTROUTING", "DOCKYARD-POSTROUTING"),
    ("filter", "FORWARD", "DOCKYARD-FORWARD"),
    ("raw", "PREROUTING", "DOCKYARD-RAW"),
]


def available() -> bool:
    return shutil.which("iptables-restore") is not None and shutil.which("iptables") is not None


def render(rs: Ruleset) -> str:
    """An iptables-restore script (IPv4 rules; IPv6 needs nftables here)."""
    nat = ["*nat", ":DOCKYARD-PREROUTING - [0:0]", ":DOCKYARD-OUTPUT - [0:0]",
           ":DOCKYARD-POSTROUTING - [0:0]", ":DOCKYARD-PUBLISH - [0:0]",
           "-A DOCKYARD-PREROUTING -m addrtype --dst-type LOCAL -j DOCKYARD-PUBLISH",
           "-A DOCKYARD-OUTPUT -m addrtype --dst-type LOCAL -j DOCKYARD-PUBLISH"]
    for p in rs.ports:
        if ":" in p.ctr_ip:
            continue
        dst = "" if p.host_ip in ("", "0.0.0.0") else f"-d {p.host_ip} "
        nat.append(f"-A DOCKYARD-PUBLISH {dst}-p {p.proto} -m {p.proto} --dport {p.host_port} "
                   f"-j DNAT --to-destination {p.ctr_ip}:{p.ctr_port}")
    for b in rs.bridges:
        for s in b.subnets4:
            if b.masquerade and not b.internal:
                nat.append(f"-A DOCKYARD-POSTROUTING -s {s} ! -o {b.name} -j MASQUERADE")
            nat.append(f"-A DOCKYARD-POSTROUTING -o {b.name} -s {s} -m conntrack --ctstate DNAT "
                       "-j MASQUERADE")
        nat.append(f"-A DOCKYARD-POSTROUTING -o {b.name} -m conntrack --ctstate DNAT "
                   "-m addrtype --src-type LOCAL -j MASQUERADE")
    nat.append("COMMIT")
    flt = ["*filter", ":DOCKYARD-FORWARD - [0:0]"]
    names = [b.name for b in rs.bridges]
    for b in rs.bridges:
        if b.internal:
            flt.append(f"-A DOCKYARD-FORWARD -i {b.name} ! -o {b.name} -j DROP")
            flt.append(f"-A DOCKYARD-FORWARD -o {b.name} ! -i {b.name} -j DROP")
        if not b.icc:
            flt.append(f"-A DOCKYARD-FORWARD -i {b.name} -o {b.name} -j DROP")
        for other in names:
            if other != b.name:
                flt.append(f"-A DOCKYARD-FORWARD -i {b.name} -o {other} -j DROP")
    for b in rs.bridges:
        # past our drops, our bridges' traffic is accepted whatever FORWARD's policy
        flt.append(f"-A DOCKYARD-FORWARD -i {b.name} -j ACCEPT")
        flt.append(f"-A DOCKYARD-FORWARD -o {b.name} -j ACCEPT")
    flt.append("COMMIT")
    raw = ["*raw", ":DOCKYARD-RAW - [0:0]"]
    for p in rs.ports:
        if p.host_ip.startswith("127."):
            raw.append(f"-A DOCKYARD-RAW ! -i lo -d {p.host_ip} -p {p.proto} -m {p.proto} "
                       f"--dport {p.host_port} -j DROP")
    raw.append("-A DOCKYARD-RAW -i lo -j RETURN")
    for b in rs.bridges:
        for s in b.subnets4:
            raw.append(f"-A DOCKYARD-RAW -d {s} ! -i {b.name} -m addrtype ! --src-type LOCAL "
                       "-j DROP")
    raw.append("COMMIT")
    return "\n".join(nat + flt + raw) + "\n"


def _jumps(add: bool) -> None:
    for table, chain, ours in JUMPS:
        present = subprocess.run(["iptables", "-w", "-t", table, "-C", chain, "-j", ours],
                                 capture_output=True).returncode == 0
        if add and not present:
            r = subprocess.run(["iptables", "-w", "-t", table, "-I", chain, "1", "-j", ours],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise FirewallError(f"iptables: {r.stderr.strip()}")
        elif not add and present:
            subprocess.run(["iptables", "-w", "-t", table, "-D", chain, "-j", ours],
                           capture_output=True)


_jumped = False  # the jumps were checked by this process


def apply(rs: Ruleset) -> None:
    global _jumped
    if not rs.bridges and not rs.ports:
        remove()
        return
    r = subprocess.run(["iptables-restore", "-w", "--noflush"], input=render(rs),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise FirewallError(f"iptables-restore: {r.stderr.strip()}")
    if not _jumped:
        _jumps(add=True)
        _jumped = True


def remove() -> None:
    global _jumped
    _jumped = False
    _jumps(add=False)
    for table, _, ours in JUMPS + [("nat", "", "DOCKYARD-PUBLISH")]:
        for flag in ("-F", "-X"):
            subprocess.run(["iptables", "-w", "-t", table, flag, ours], capture_output=True)
