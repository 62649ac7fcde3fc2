"""Legacy container links (`--link name:alias`, HostConfig.Links) as dockerd
20.10 keeps them: registered at create for containers not on a user-defined
network, each naming its target `/<parent>/<alias>` (a name that resolves to
the target, and that `DELETE /containers/<parent>/<alias>?link=1` removes).
A linking container started on the default bridge gets its targets'
environment variables and /etc/hosts lines. On user-defined networks links
are endpoint aliases the embedded DNS answers (network/endpoints.py).

The index is a table: parent, alias, target and the target's name when
linked. A removed target stays linked, as with dockerd: the parent shows it
and can't start ("Cannot link to a non running container")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import DockyardError
from ..store.db import Database

SCHEMA = """CREATE TABLE IF NOT EXISTS links (
    parent_id   TEXT NOT NULL,
    alias       TEXT NOT NULL,      -- the name under the parent's: "db", or "a/b"
    child_id    TEXT NOT NULL,
    child_name  TEXT NOT NULL,      -- the target's name when linked (shown once it's gone)
    PRIMARY KEY (parent_id, alias)
)"""


@dataclass
class Link:
    parent_id: str
    alias: str
    child_id: str
    child_name: str


def parse_link(spec: str) -> tuple[str, str]:
    """`name:alias`, `name` (alias = name) or inspect's own `/name:/parent/alias`:
    (target, alias), as docker's opts.ParseLink."""
    if spec == "":
        raise DockyardError("empty string specified for links")
    parts = spec.split(":")
    if len(parts) > 2:
        raise DockyardError(f"bad format for links: {spec}")
    if len(parts) == 1:
        return spec, spec
    name, alias = parts
    if name.startswith("/"):
        return name[1:], alias.rsplit("/", 1)[-1]
    return name, alias


def link_env(name: str, ip: str, env: list[str], exposed: dict[str, Any] | None) -> list[str]:
    """The variables a link to a container at `ip` gives (`name`: /parent/alias):
    <ALIAS>_PORT..., <ALIAS>_NAME, <ALIAS>_ENV_<var>, as dockerd 20.10's links."""
    alias = name.rsplit("/", 1)[-1].upper().replace("-", "_")
    ports: list[tuple[int, str]] = []
    for key in exposed or {}:
        num, _, proto = key.partition("/")
        try:
            ports.append((int(num.split("-")[0]), (proto or "tcp").lower()))
        except ValueError:
            continue
    # tcp first, then by protocol and number; runs of consecutive ports get
    # _START/_END too (dockerd 20.10 sorted unstably, so its order varied
    # between starts; this is moby's later, fixed order)
    ports.sort(key=lambda p: (p[1] != "tcp", p[1], p[0]))
    out: list[str] = []
    if ports:
        out.append(f"{alias}_PORT={ports[0][1]}://{ip}:{ports[0][0]}")
    start = end = ports[0] if ports else (0, "")
    for i, (num, proto) in enumerate(ports):
        prefix = f"{alias}_PORT_{num}_{proto.upper()}"
        out += [f"{prefix}={proto}://{ip}:{num}", f"{prefix}_ADDR={ip}",
                f"{prefix}_PORT={num}", f"{prefix}_PROTO={proto}"]
        if num == end[0] + 1 and proto == end[1]:
            end = (num, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            p = f"{alias}_PORT_{start[0]}_{start[1].upper()}"
            out += [f"{p}_START={start[1]}://{ip}:{start[0]}", f"{p}_PORT_START={start[0]}",
                    f"{p}_END={end[1]}://{ip}:{end[0]}", f"{p}_PORT_END={end[0]}"]
        start = end = (num, proto)
    out.append(f"{alias}_NAME={name}")
    for e in env:
        k, eq, v = e.partition("=")
        if eq and k not in ("HOME", "PATH"):
            out.append(f"{alias}_ENV_{k}={v}")
    return out


class LinkIndex:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as c:
            c.execute(SCHEMA)

    def add(self, parent_id: str, alias: str, child_id: str, child_name: str) -> None:
        # a name already taken is skipped, as dockerd skips a reserved one
        with self.db.transaction() as c:
            c.execute("INSERT OR IGNORE INTO links VALUES (?, ?, ?, ?)",
                      (parent_id, alias, child_id, child_name))

    def children(self, parent_id: str) -> list[Link]:
        return [Link(*r) for r in self.db.query(
            "SELECT parent_id, alias, child_id, child_name FROM links WHERE parent_id=? "
            "ORDER BY alias", (parent_id,))]

    def parents(self, child_id: str) -> list[Link]:
        return [Link(*r) for r in self.db.query(
            "SELECT parent_id, alias, child_id, child_name FROM links WHERE child_id=? "
            "ORDER BY parent_id, alias", (child_id,))]

    def get(self, parent_id: str, alias: str) -> Link | None:
        r = self.db.one("SELECT parent_id, alias, child_id, child_name FROM links "
                        "WHERE parent_id=? AND alias=?", (parent_id, alias))
        return Link(*r) if r else None

    def remove(self, parent_id: str, alias: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM links WHERE parent_id=? AND alias=?", (parent_id, alias))

    def drop_parent(self, parent_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM links WHERE parent_id=?", (parent_id,))
