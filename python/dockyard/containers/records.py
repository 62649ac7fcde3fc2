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

from ..errors import InvalidParameter, NotFound
from ..events import EventLog
from ..graphdriver.base import rmtree
from ..imageconfig import parse_time
from ..network.service import NetworkService
from ..volumes.service import VolumeService
from ..store.images import ImageStore
from ..store.local import LocalStore
from ..units import human_duration
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
        # runc's own state (`runc --root`) for containers of the runc driver.
        self.runc_root = Path(exec_root) / "runc"
        self.cgroup_parent = cgroup_parent
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

    def save(self, c: Container) -> None:
        """Write the record back, but for `State.Health`: the health monitor
        writes that key alone (`health.py`), so the row's value stays."""
        state = json.dumps(c.state)
        with self.db.transaction() as conn:
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
        if r is None:
            raise ContainerNotFound(f"No such container: {ref}")
        return Container.from_row(r)

    def container_dir(self, cid: str) -> Path:
        return self.dir / cid

    def state_dir(self, cid: str) -> Path:
        return self.state_root / cid

    def log_path(self, cid: str) -> Path:
        return self.dir / cid / f"{cid}-json.log"

    def cgroup_path(self, c: Container) -> str:
        """`<parent>/<id>` in every hierarchy: the container's --cgroup-parent,
        else the daemon's (cgroupfs driver, as dockerd)."""
        parent = (c.hostconfig.get("CgroupParent") or self.cgroup_parent).strip("/")
        return f"{parent}/{c.id}" if parent else c.id

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
        if st.get("Running"):
            up = human_duration(time.time() - parse_time(st.get("StartedAt", "")))
            if st.get("Paused"):
                return f"Up {up} (Paused)"
            if st.get("Restarting"):
                return f"Restarting ({st.get('ExitCode', 0)}) {up} ago"
            health = st.get("Health")
            if health is not None:
                status = health.get("Status") or "unhealthy"
                return f"Up {up} ({'health: starting' if status == 'starting' else status})"
            return f"Up {up}"
        if st.get("FinishedAt", ZERO_TIME) == ZERO_TIME:
            return "Created"
        ago = human_duration(time.time() - parse_time(st.get("FinishedAt", "")))
        return f"Exited ({st.get('ExitCode', 0)}) {ago} ago"
