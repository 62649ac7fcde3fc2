"""The volume service: Docker's `local` volume driver and the references
containers hold on volumes.

A volume is a row in the engine's database and a directory
`<root>/volumes/<name>/_data`. The row is written first and the directory
made after, so a crash in between leaves a volume whose directory is made
again at start; a directory found without a row is adopted, never deleted:
a volume's data goes only through `remove`, `prune` or the removal of the
container that owns an anonymous volume (whose rename out of the way is made
durable before it is answered, so a power cut never brings it back). Which containers use a volume is a
table of references, so "in use" survives any restart. Volumes with driver
options (`type`, `device`, `o`) are mounted at their first user's start and
unmounted after the last one's exit, as dockerd's local driver does.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import Conflict, DockyardError, InvalidParameter, NotFound
from ..events import EventLog
from ..filters import labels_match
from ..graphdriver.base import fsync_dir, spread_subdirs
from ..ids import generate_id
from ..store.db import Database
from .mounts import check_volume_name

log = logging.getLogger("dockyard.volumes")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS volumes (
        name        TEXT PRIMARY KEY,
        driver      TEXT NOT NULL,
        created     TEXT NOT NULL,      -- RFC 3339, as dockerd shows CreatedAt
        labels      TEXT NOT NULL,
        options     TEXT NOT NULL,
        anonymous   INTEGER NOT NULL DEFAULT 0
    )""",
    # the containers that use a volume (kept from create to removal, as dockerd)
    """CREATE TABLE IF NOT EXISTS volume_refs (
        volume       TEXT NOT NULL REFERENCES volumes(name),
        container_id TEXT NOT NULL,
        PRIMARY KEY (volume, container_id)
    )""",
]

FILTERS = {"dangling", "driver", "label", "name"}
LOCAL_OPTS = {"type", "device", "o", "size"}


def _now() -> str:
    # dockerd: time.Now().Format(time.RFC3339), a whole second with the offset
    t = time.localtime()
    off = time.strftime("%z", t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + \
        ("Z" if off == "+0000" else f"{off[:3]}:{off[3:]}")


class VolumeService:
    def __init__(self, db: Database, events: EventLog, root: Path,
                 remap_root: tuple[int, int] | None = None) -> None:
        self.db = db
        self.events = events
        #: --userns-remap: containers' root on the host, which owns new _data dirs.
        self.remap_root = remap_root
        self.dir = Path(root) / "volumes"
        self.dir.mkdir(exist_ok=True, mode=0o701)
        spread_subdirs(self.dir)  # each volume's files away from those just freed
        self._lock = threading.RLock()
        self._mounted: dict[str, int] = {}  # option volumes mounted by this process: users
        with db.transaction() as c:
            for stmt in SCHEMA:
                c.execute(stmt)
        self._settle()

    def _settle(self) -> None:
        """At start: every row has its directory; every directory has its row."""
        names = {r["name"] for r in self.db.query("SELECT name FROM volumes")}
        for d in self.dir.glob(".removing-*"):  # a removal a crash interrupted
            shutil.rmtree(d, ignore_errors=True)
        for name in names:
            if not self.path(name).is_dir():
                self._make_data(name)
        for d in self.dir.iterdir():
            if d.is_dir() and d.name not in names and (d / "_data").is_dir():
                log.warning("volume %s: directory without a record, adopted", d.name)
                with self.db.transaction() as c:
                    c.execute("INSERT OR IGNORE INTO volumes VALUES (?, 'local', ?, '{}', '{}', 0)",
                              (d.name, _now()))

    # --- records ---------------------------------------------------------------
    def _row(self, name: str) -> Any:
        r = self.db.one("SELECT * FROM volumes WHERE name=?", (name,))
        if r is None:
            raise NotFound(f"get {name}: no such volume")
        return r

    def path(self, name: str) -> Path:
        return self.dir / name / "_data"

    def _make_data(self, name: str) -> None:
        (self.dir / name).mkdir(exist_ok=True, mode=0o701)
        data = self.path(name)
        data.mkdir(exist_ok=True, mode=0o755)
        if self.remap_root is not None:
            os.chown(data, *self.remap_root)

    def _view(self, r: Any) -> dict[str, Any]:
        labels = json.loads(r["labels"])
        opts = json.loads(r["options"])
        return {"CreatedAt": r["created"], "Driver": r["driver"], "Labels": labels or None,
                "Mountpoint": str(self.path(r["name"])), "Name": r["name"],
                "Options": opts or None, "Scope": "local"}

    def inspect(self, name: str) -> dict[str, Any]:
        return self._view(self._row(name))

    def exists(self, name: str) -> bool:
        return self.db.one("SELECT 1 FROM volumes WHERE name=?", (name,)) is not None

    # --- API ------------------------------------------------------------------
    def create(self, name: str | None = None, driver: str | None = None,
               driver_opts: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               anonymous: bool = False) -> dict[str, Any]:
        """`POST /volumes/create`: idempotent for a name that exists with the same driver."""
        driver = driver or "local"
        if driver != "local":
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" '
                           "not found")
        opts = {str(k): str(v) for k, v in (driver_opts or {}).items()}
        _check_local_opts(opts)
        labels = {str(k): str(v) for k, v in (labels or {}).items()}
        if not name:
            name, anonymous = generate_id(), True
        try:
            check_volume_name(name)
        except InvalidParameter as e:
            raise InvalidParameter(f"create {name}: {e}") from None
        with self._lock:
            r = self.db.one("SELECT * FROM volumes WHERE name=?", (name,))
            if r is not None:
                if r["driver"] != driver:
                    raise Conflict(f"volume name must be unique: {name}")
                return self._view(r)
            with self.db.transaction() as c:
                c.execute("INSERT INTO volumes VALUES (?, ?, ?, ?, ?, ?)",
                          (name, driver, _now(), json.dumps(labels), json.dumps(opts),
                           int(anonymous)))
            self._make_data(name)
        self.events.emit("volume", "create", name, {"driver": driver})
        return self.inspect(name)

    def list(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        used = {r["volume"] for r in self.db.query("SELECT DISTINCT volume FROM volume_refs")}
        out = []
        for r in self.db.query("SELECT * FROM volumes ORDER BY name"):
            if _matches(r, filters, used):
                out.append(self._view(r))
        return {"Volumes": out, "Warnings": None}

    def users(self, name: str) -> list[str]:
        return [r["container_id"] for r in self.db.query(
            "SELECT container_id FROM volume_refs WHERE volume=? ORDER BY container_id",
            (name,))]

    def remove(self, name: str, force: bool = False) -> None:
        with self._lock:
            try:
                self._row(name)
            except NotFound:
                if force:
                    return
                raise
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._unmount(name, force=True)
            with self.db.transaction() as c:
                c.execute("DELETE FROM volumes WHERE name=?", (name,))
            # renamed first, so a crash mid-delete never leaves a half volume named
            gone = self.dir / f".removing-{name}"
            if (self.dir / name).exists():
                os.rename(self.dir / name, gone)
                # durable before the answer: a directory back after a power
                # cut would be adopted as the volume again
                fsync_dir(self.dir)
            shutil.rmtree(gone, ignore_errors=True)
        self.events.emit("volume", "destroy", name, {"driver": "local"})

    def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """API 1.41 semantics: every unused volume (labels filter honoured)."""
        deleted, size = [], 0
        used = {r["volume"] for r in self.db.query("SELECT DISTINCT volume FROM volume_refs")}
        for r in self.db.query("SELECT * FROM volumes ORDER BY name"):
            if r["name"] in used:
                continue
            labels = json.loads(r["labels"])
            if "label" in filters and not labels_match(labels, filters["label"]):
                continue
            if "label!" in filters and labels_match(labels, filters["label!"]):
                continue
            s = _du(self.path(r["name"]))
            try:
                self.remove(r["name"])
            except DockyardError:
                continue
            deleted.append(r["name"])
            size += s
        return {"VolumesDeleted": deleted, "SpaceReclaimed": size}

    def sizes(self) -> dict[str, int]:
        """Bytes used by each volume (`system df -v`)."""
        return {r["name"]: _du(self.path(r["name"])) for r in
                self.db.query("SELECT name FROM volumes")}

    # --- containers ------------------------------------------------------------
    def add_ref(self, name: str, cid: str) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT OR IGNORE INTO volume_refs VALUES (?, ?)", (name, cid))

    def drop_stale_refs(self, containers: set[str]) -> None:
        """At start: references of containers that don't exist (a crash
        between a create's references and its row) go."""
        stale = {r["container_id"] for r in self.db.query(
            "SELECT DISTINCT container_id FROM volume_refs")} - containers
        for cid in stale:
            log.warning("volume references of unknown container %s dropped", cid)
            self.drop_refs(cid, remove_anonymous=True)

    def drop_refs(self, cid: str, remove_anonymous: bool) -> None:
        """A container is removed: its references go, and with `rm -v` (or
        --rm) the anonymous volumes only it used."""
        names = [r["volume"] for r in self.db.query(
            "SELECT volume FROM volume_refs WHERE container_id=?", (cid,))]
        if not names:
            return
        with self.db.transaction() as c:
            c.execute("DELETE FROM volume_refs WHERE container_id=?", (cid,))
        if not remove_anonymous:
            return
        for name in names:
            r = self.db.one("SELECT anonymous FROM volumes WHERE name=?", (name,))
            if r and r["anonymous"]:
                try:
                    self.remove(name)
                except Conflict:
                    pass  # another container still uses it (--volumes-from)

    def acquire(self, name: str) -> str:
        """The directory to mount for a starting container (a volume with
        driver options is mounted now if no running container has it)."""
        opts = json.loads(self._row(name)["options"])
        if opts.get("type") or opts.get("device"):
            with self._lock:
                if not self._mounted.get(name) and not os.path.ismount(self.path(name)):
                    _mount_local(opts, self.path(name))
                self._mounted[name] = self._mounted.get(name, 0) + 1
        self.events.emit("volume", "mount", name, {"driver": "local"})
        return str(self.path(name))

    def release(self, name: str) -> None:
        with self._lock:
            if name in self._mounted:
                self._mounted[name] -= 1
                if self._mounted[name] <= 0:
                    self._unmount(name)
        self.events.emit("volume", "unmount", name, {"driver": "local"})

    def _unmount(self, name: str, force: bool = False) -> None:
        self._mounted.pop(name, None)
        p = self.path(name)
        if os.path.ismount(p):
            subprocess.run(["umount", *(["-l"] if force else []), str(p)], capture_output=True)


def _check_local_opts(opts: dict[str, str]) -> None:
    """dockerd's local driver: type and device go together, o needs both."""
    bad = sorted(k for k in opts if k not in LOCAL_OPTS)
    if bad:
        raise InvalidParameter(f"invalid option key: {bad[0]!r}")
    if ("type" in opts) != ("device" in opts) and "size" not in opts:
        raise InvalidParameter('missing required option: "device"' if "type" in opts else
                               'missing required option: "type"')
    if "o" in opts and not ("type" in opts and "device" in opts):
        raise InvalidParameter('missing required option: "type"' if "type" not in opts else
                               'missing required option: "device"')


def _mount_local(opts: dict[str, str], target: Path) -> None:
    args = ["mount", "-t", opts["type"]]
    if opts.get("o"):
        args += ["-o", opts["o"]]
    r = subprocess.run(args + [opts["device"], str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        raise DockyardError(f"error while mounting volume '{target}': failed to mount local "
                            f"volume: {r.stderr.strip()}")


def _matches(r: Any, f: dict[str, list[str]], used: set[str]) -> bool:
    if "name" in f and not any(v in r["name"] for v in f["name"]):
        return False
    if "driver" in f and r["driver"] not in f["driver"]:
        return False
    if "label" in f and not labels_match(json.loads(r["labels"]), f["label"]):
        return False
    if "dangling" in f:
        v = f["dangling"][0].lower()
        if v not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"invalid filter 'dangling={f['dangling'][0]}'")
        if (r["name"] not in used) != (v in ("true", "1")):
            return False
    return True


def _du(p: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(p):
        for fn in files:
            try:
                total += os.lstat(os.path.join(dirpath, fn)).st_blocks * 512
            except OSError:
                pass
    return total
