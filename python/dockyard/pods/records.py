"""The pods' records and their containers' CRI metadata, in the engine's
database (tables made here: the pods package owns them)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import NotFound
from ..store.db import Database

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS pods (
        id      TEXT PRIMARY KEY,
        name    TEXT NOT NULL,
        record  TEXT NOT NULL       -- Pod as JSON
    )""",
    """CREATE TABLE IF NOT EXISTS pod_containers (
        id      TEXT PRIMARY KEY,   -- the container's ID
        pod_id  TEXT NOT NULL,
        record  TEXT NOT NULL       -- PodContainer as JSON
    )""",
    "CREATE INDEX IF NOT EXISTS pod_containers_pod ON pod_containers(pod_id)",
)

READY, NOTREADY = "ready", "notready"


def now_ns() -> int:
    return time.time_ns()


@dataclass
class Pod:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    labels: dict[str, str]
    annotations: dict[str, str]
    created: int                    # ns since the epoch
    state: str = READY
    hostname: str = ""
    log_directory: str = ""
    #: "node" (the host's) or "pod" (pinned files below) per namespace
    network: str = "pod"
    ipc: str = "pod"
    pid: str = "container"          # CRI NamespaceMode: pod, container, node
    ip: str = ""
    additional_ips: list[str] = field(default_factory=list)
    #: the pinned namespace files, by kind ("net", "ipc", "uts")
    ns_paths: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""
    runtime_handler: str = ""
    #: the rest of the PodSandboxConfig (DNS, port mappings, Linux options)
    config: dict[str, Any] = field(default_factory=dict)
    #: CNI networking was set up and not yet torn down
    cni_attached: bool = False
    #: the init of the pod's shared PID namespace (pid "pod"), as the host sees it
    init_pid: int = 0

    @property
    def ready(self) -> bool:
        return self.state == READY


@dataclass
class PodContainer:
    """What the CRI keeps about a container beyond its Docker record."""
    id: str
    pod_id: str
    name: str
    attempt: int
    labels: dict[str, str]
    annotations: dict[str, str]
    image: str                      # as the CRI asked for it
    log_path: str
    created: int
    #: the CRI mounts as given (ContainerStatus shows them back)
    mounts: list[dict[str, Any]] = field(default_factory=list)


class PodRecords:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as c:
            for stmt in SCHEMA:
                c.execute(stmt)

    # --- pods ---------------------------------------------------------------
    def save(self, p: Pod, durable: bool = True) -> None:
        """`durable=False` for what a power cut makes moot (a pod made ready:
        after a reboot it is not, whatever the record says), see
        Database.transaction."""
        with self.db.transaction(durable) as c:
            c.execute("INSERT OR REPLACE INTO pods VALUES (?,?,?)",
                      (p.id, p.name, json.dumps(asdict(p))))

    def get(self, pod_id: str) -> Pod:
        """By full ID or a unique prefix, as the CRI tools pass them."""
        rows = self.db.query("SELECT record FROM pods WHERE id LIKE ?", (pod_id + "%",)) \
            if pod_id else []
        if len(rows) != 1:
            raise NotFound(f"pod sandbox {pod_id!r} not found" if not rows else
                           f"pod sandbox ID {pod_id!r} is ambiguous")
        return Pod(**json.loads(rows[0]["record"]))

    def all(self) -> list[Pod]:
        return [Pod(**json.loads(r["record"]))
                for r in self.db.query("SELECT record FROM pods ORDER BY rowid")]

    def by_name(self, name: str) -> Pod | None:
        row = self.db.one("SELECT record FROM pods WHERE name=?", (name,))
        return Pod(**json.loads(row["record"])) if row else None

    def delete(self, pod_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM pod_containers WHERE pod_id=?", (pod_id,))
            c.execute("DELETE FROM pods WHERE id=?", (pod_id,))

    # --- their containers ----------------------------------------------------
    def insert_container(self, conn: sqlite3.Connection, pc: PodContainer) -> None:
        """`pc`'s row, in the caller's transaction (the one recording the
        container itself: one commit for both, and never one without the other)."""
        conn.execute("INSERT OR REPLACE INTO pod_containers VALUES (?,?,?)",
                     (pc.id, pc.pod_id, json.dumps(asdict(pc))))

    def container(self, cid: str) -> PodContainer | None:
        row = self.db.one("SELECT record FROM pod_containers WHERE id=?", (cid,))
        return PodContainer(**json.loads(row["record"])) if row else None

    def has_container(self, cid: str) -> bool:
        return self.db.one("SELECT 1 FROM pod_containers WHERE id=?", (cid,)) is not None

    def containers(self, pod_id: str | None = None) -> list[PodContainer]:
        rows = self.db.query("SELECT record FROM pod_containers ORDER BY rowid") \
            if pod_id is None else \
            self.db.query("SELECT record FROM pod_containers WHERE pod_id=? ORDER BY rowid",
                          (pod_id,))
        return [PodContainer(**json.loads(r["record"])) for r in rows]

    def forget_container(self, cid: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM pod_containers WHERE id=?", (cid,))
