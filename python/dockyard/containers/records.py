"""Container records: the `containers` table, each container's directory
(hostname, hosts, resolv.conf, the json log) and state directory (the
shim's files), a lock per container, its cgroup path, and what listings show
(`docker ps` status, the images in use).

`ContainerRecords` is the base the reconciler (`reconcile.py`) and the
lifecycle (`service.py`) build on; the operations on one container (pause,
top, stats, diff, export, commit, cp) take it and need nothing more.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from ..errors import DockyardError, InvalidParameter, NotFound
from ..events import EventLog
from ..graphdriver.base import rmtree
from ..imageconfig import parse_time
from ..rootless import cgroup_base
from ..network.service import NetworkService
from ..volumes.service import VolumeService
from ..store.images import ImageStore
from ..store.local import LocalStore
from ..units import human_duration
from .links import Link, LinkIndex, link_env
from .model import ZERO_TIME, Container


class ContainerNotFound(NotFound):
    pass


class ContainerRecords:
    def __init__(self, store: LocalStore, events: EventLog, root: Path,
                 exec_root: str | os.PathLike, cgroup_parent: str,
                 network: NetworkService | None = None,
                 volumes: VolumeService | None = None) -> None:
        self.store = store
        # Endpoints, ports and namespaces of containers; None: loopback only.
        self.network = network
        # Volumes containers mount (None: the Python API without volumes: binds only)
        self.volumes = volumes
        self.db = store.db
        self.driver = store.driver
        self.events = events
        self.dir = Path(root) / "containers"
        self.dir.mkdir(exist_ok=True, mode=0o710)
        self.state_root = Path(exec_root) / "containers"
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in (self.dir, self.state_root):  # removals a crash interrupted
            for p in d.glob(".removing-*"):
                rmtree(p)
        # Directories without a row: a create a crash cut short, or a removal
        # whose row went but whose rename a power cut undid.
        known = {r["id"] for r in self.db.query("SELECT id FROM containers")}
        for p in self.dir.iterdir():
            if len(p.name) == 64 and p.name not in known:
                rmtree(p)
        # runc's own state (`runc --root`) for containers of the runc driver.
        self.runc_root = Path(exec_root) / "runc"
        # Rootless with a delegated cgroup: the containers' cgroups go beneath it.
        self.rootless_cgroup = cgroup_base()
        self.cgroup_parent = self.rootless_cgroup or cgroup_parent
        # legacy links (`--link`): parent, alias, target
        self.links = LinkIndex(self.db)
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    @property
    def images(self) -> ImageStore:
        """The images containers are created from (the `ancestor` filter resolves here)."""
        return self.store.images

    # --- records -------------------------------------------------------------
    def emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = dict(c.config.get("Labels") or {})
        attrs.update(image=c.config.get("Image") or c.image_id, name=c.name.lstrip("/"))
        attrs.update(extra)
        self.events.emit("container", action, c.id, attrs)

    def lock(self, cid: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(cid, threading.RLock())

    def save(self, c: Container, durable: bool = True) -> None:
        """Write the record back, but for `State.Health`: the health monitor
        writes that key alone (`health.py`), so the row's value stays.
        `durable=False` for a change of running state only (see
        `Database.transaction`): a power cut ends every process anyway."""
        state = json.dumps(c.state)
        with self.db.transaction(durable) as conn:
            conn.execute("UPDATE containers SET name=?, config=?, hostconfig=?, state=CASE "
                         "WHEN json_type(state, '$.Health') IS NULL "
                         "THEN json_remove(?, '$.Health') "
                         "ELSE json_set(?, '$.Health', json(json_extract(state, '$.Health'))) "
                         "END, restart_count=? WHERE id=?",
                         (c.name, json.dumps(c.config), json.dumps(c.hostconfig), state, state,
                          c.restart_count, c.id))

    def all(self) -> list[Container]:
        return [Container.from_row(r) for r in self.db.query("SELECT * FROM containers")]

    def get(self, ref: str) -> Container:
        """By full ID, name (with or without '/'), or unique ID prefix, as Docker."""
        r = self.db.one("SELECT * FROM containers WHERE id=?", (ref,))
        if r is None:
            name = ref if ref.startswith("/") else "/" + ref
            r = self.db.one("SELECT * FROM containers WHERE name=?", (name,))
        if r is None and ref and all(ch in "0123456789abcdef" for ch in ref):
            rows = self.db.query("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
            r = rows[0] if rows else None
        if r is None and "/" in ref.strip("/"):
            link = self.link_named(ref)
            if link is not None:
                r = self.db.one("SELECT * FROM containers WHERE id=?", (link.child_id,))
        if r is None:
            raise ContainerNotFound(f"No such container: {ref}")
        return Container.from_row(r)

    # --- links ----------------------------------------------------------------
    def link_named(self, name: str) -> Link | None:
        """The link a name `/<parent>/<alias>` stands for (the name resolves to
        its target, as dockerd reserves it)."""
        parent, _, alias = name.strip("/").partition("/")
        r = self.db.one("SELECT id FROM containers WHERE name=?", ("/" + parent,))
        return self.links.get(r["id"], alias) if r and alias else None

    def names(self, c: Container) -> list[str]:
        """`Names` of the container list: its own and the link names it is the
        target of, sorted as dockerd lists them."""
        out = [c.name]
        for link in self.links.parents(c.id):
            r = self.db.one("SELECT name FROM containers WHERE id=?", (link.parent_id,))
            if r:
                out.append(f"{r['name']}/{link.alias}")
        return sorted(out)

    def linked(self, c: Container) -> list[tuple[str, str, list[str]]]:
        """What a container on the default bridge gets of its links when it
        starts (or execs): per link its /etc/hosts names, the target's address
        and the variables. dockerd's errors for a target off the default bridge
        or not running; nothing for a container off the bridge."""
        net = self.network
        if net is None or net.default_bridge_address(c.id) is None:
            return []
        targets: list[tuple[Link, Container | None]] = []
        for link in self.links.children(c.id):
            try:
                child: Container | None = self.get(link.child_id)
            except NotFound:
                child = None  # removed: dockerd still holds it, stopped
            if child is not None and net.default_bridge_address(child.id) is None:
                raise DockyardError(f"Cannot link to {child.name}, as it does not belong to "
                                    "the default network")
            targets.append((link, child))
        out = []
        for link, child in targets:
            ip = net.default_bridge_address(child.id) if child is not None else None
            if child is None or not child.state.get("Running") or not ip:
                name = child.name if child is not None else link.child_name
                raise DockyardError(f"Cannot link to a non running container: {name} AS "
                                    f"{c.name}/{link.alias}")
            alias = link.alias.rsplit("/", 1)[-1]
            # the alias, the target's hostname, and its name unless the alias is it
            names = f"{alias} {child.config.get('Hostname') or child.id[:12]}"
            if alias != child.name[1:]:
                names += " " + child.name[1:]
            out.append((names, ip, link_env(f"{c.name}/{link.alias}", ip,
                                            list(child.config.get("Env") or []),
                                            child.config.get("ExposedPorts"))))
        return out

    def link_specs(self, c: Container) -> list[str] | None:
        """HostConfig.Links as inspect shows it: `/target:/parent/alias`."""
        out = []
        for link in self.links.children(c.id):
            r = self.db.one("SELECT name FROM containers WHERE id=?", (link.child_id,))
            out.append(f"{r['name'] if r else link.child_name}:{c.name}/{link.alias}")
        return out or None

    def container_dir(self, cid: str) -> Path:
        return self.dir / cid

    def state_dir(self, cid: str) -> Path:
        return self.state_root / cid

    def log_path(self, cid: str) -> Path:
        return self.dir / cid / f"{cid}-json.log"

    def cgroup_path(self, c: Container) -> str:
        return self.cgroup_path_of(c.id, c)

    def cgroup_path_of(self, cid: str, c: Container | None) -> str:
        """`<parent>/<id>` in every hierarchy: the container's --cgroup-parent,
        else the daemon's (cgroupfs driver, as dockerd); rootless, both below
        the delegated cgroup."""
        own = ((c.hostconfig.get("CgroupParent") if c else "") or "").strip("/")
        if self.rootless_cgroup:
            parent = f"{self.rootless_cgroup}/{own}" if own else self.rootless_cgroup
        else:
            parent = own or self.cgroup_parent.strip("/")
        return f"{parent}/{cid}" if parent else cid

    @staticmethod
    def runtime(c: Container) -> str:
        """The exec driver of container `c` (records from before drivers: native)."""
        return "runc" if c.hostconfig.get("Runtime") == "runc" else "native"

    def running_pid(self, c: Container) -> int:
        return int(c.state.get("Pid") or 0) if c.state.get("Running") else 0

    # --- listings ------------------------------------------------------------
    def image_users(self) -> dict[str, list[tuple[str, bool]]]:
        out: dict[str, list[tuple[str, bool]]] = {}
        for c in self.all():
            out.setdefault(c.image_id, []).append((c.id, bool(c.state.get("Running"))))
        return out

    def status_text(self, c: Container) -> str:
        st = c.state
        if st.get("Restarting"):  # since the exit it restarts after
            ago = human_duration(time.time() - parse_time(st.get("FinishedAt", "")))
            return f"Restarting ({st.get('ExitCode', 0)}) {ago} ago"
        if st.get("Running"):
            up = human_duration(time.time() - parse_time(st.get("StartedAt", "")))
            if st.get("Paused"):
                return f"Up {up} (Paused)"
            health = st.get("Health")
            if health is not None:
                status = health.get("Status") or "unhealthy"
                return f"Up {up} ({'health: starting' if status == 'starting' else status})"
            return f"Up {up}"
        if st.get("FinishedAt", ZERO_TIME) == ZERO_TIME:
            return "Created"
        ago = human_duration(time.time() - parse_time(st.get("FinishedAt", "")))
        return f"Exited ({st.get('ExitCode', 0)}) {ago} ago"
