"""A container's /etc/hosts, /etc/resolv.conf and /etc/hostname, written as
files of its own and bind-mounted (libnetwork's etchosts and resolvconf)."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

HOSTS_HEAD = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""

EMBEDDED_DNS = "127.0.0.11"
# dockerd's fallback when the host has no usable resolver
FALLBACK_V4 = ["8.8.8.8", "8.8.4.4"]


def hosts(own: list[tuple[str, str]], extra: list[tuple[str, str]]) -> str:
    """`own`: (address, names) of the container itself; `extra`: --add-host's
    (name, address) pairs, in dockerd's order: before the container's own."""
    lines = [HOSTS_HEAD]
    for name, addr in extra:
        lines.append(f"{addr}\t{name}\n")
    for addr, names in own:
        lines.append(f"{addr}\t{names}\n")
    return "".join(lines)


def parse_add_host(h: str) -> tuple[str, str]:
    """`name:ip` or `name=ip` (IPv6 as-is or in brackets), validated as dockerd does."""
    name, _, addr = h.partition("=" if "=" in h else ":")
    addr = addr.strip("[]")
    if not name or not addr:
        raise ValueError(f"invalid extra host: {h}")
    if addr != "host-gateway":
        ipaddress.ip_address(addr)
    return name, addr


def host_resolv(path: str = "/etc/resolv.conf") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _is_loopback(ns: str) -> bool:
    try:
        return ipaddress.ip_address(ns.split("%")[0]).is_loopback
    except ValueError:
        return False


def resolv(host: str, dns: list[str], search: list[str], options: list[str],
           embedded: bool) -> tuple[str, list[str]]:
    """The container's resolv.conf and the upstream servers behind it.

    On the default bridge: the host's servers minus loopback ones (they can't be
    reached from the container), else 8.8.8.8/8.8.4.4. On user networks: the
    embedded server, which forwards to the host's servers (loopback included,
    dialled from the host's side) or to `--dns`.
    """
    servers = re.findall(r"^\s*nameserver\s+(\S+)", host, re.M)
    h_search: list[str] = []
    h_opts: list[str] = []
    for line in host.splitlines():
        p = line.split()
        if p and p[0] in ("search", "domain"):
            h_search = p[1:]
        elif p and p[0] == "options":
            h_opts += p[1:]
    upstream = list(dns) if dns else servers
    search = list(search) if search else h_search
    opts = list(options) if options else h_opts
    lines = []
    if embedded:
        lines.append(f"nameserver {EMBEDDED_DNS}")
        if "ndots:0" not in opts and not any(o.startswith("ndots:") for o in opts):
            opts = opts + ["ndots:0"]
    else:
        usable = [s for s in upstream if not _is_loopback(s)]
        if not usable:
            usable = FALLBACK_V4
        lines += [f"nameserver {s}" for s in usable]
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n", upstream


def update_host(path: Path, addr: str, name: str) -> None:
    """A new address for the lines naming `name` first after the address (a
    linked container restarted: libnetwork's etchosts.Update)."""
    text = _read_text(path)
    if text is None:
        return
    pat = re.compile(r"^\S*(\t" + re.escape(name) + r")(?=[\s.]|$)", re.M)
    new = pat.sub(lambda m: addr + m.group(1), text)
    if new != text:
        _rewrite(path, new)


def remove_host(path: Path, name: str) -> None:
    """Drop the lines naming `name` first (a link removed from a running container)."""
    text = _read_text(path)
    if text is None:
        return
    keep = [ln for ln in text.splitlines(keepends=True)
            if not (len(ln.split()) > 1 and ln.split()[1] == name and "\t" in ln)]
    if len(keep) != len(text.splitlines()):
        _rewrite(path, "".join(keep))


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _rewrite(path: Path, text: str) -> None:
    # in place: a running container has this very inode bind-mounted
    with open(path, "r+") as f:
        f.write(text)
        f.truncate()


def write(path: Path, text: str) -> None:
    """Before a start: in place, no temporary and rename (a directory
    operation, ~1 ms on a busy disk, three per start). Every start checks
    the files again, so one cut short by a crash never reaches a container;
    one that already holds the text (create wrote it, or the last start) is
    left alone: a read costs a tenth of a truncate and write on a busy disk."""
    data = text.encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        old = os.read(fd, len(data) + 1)
        if old != data:
            os.pwrite(fd, data, 0)
            # a truncate only for a longer old text (a new file is empty, a
            # start's /etc/hosts grows by the address): a few 0.1 ms each
            if len(old) > len(data):
                os.ftruncate(fd, len(data))
        if os.fstat(fd).st_mode & 0o7777 != 0o644:
            os.fchmod(fd, 0o644)
    finally:
        os.close(fd)
