"""What builds in progress hold, for a daemon killed mid-build to remove at
its next start: their RUN containers, recorded in the store's database
(dockerd's builds leave no container behind either: rm, forcerm, cancel),
and their directories (with the tmpfs mounts of unpacked contexts)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol

from .. import _core
from ..errors import DockyardError, NotFound
from ..graphdriver.mounts import mounts_under
from ..store.db import Database

__all__ = ["Inflight", "sweep", "sweep_dirs"]


def sweep_dirs(builder_root: Path) -> None:
    """Remove the builds' directories under `builder_root`, unmounting first."""
    if not builder_root.exists():
        return
    for m in mounts_under(builder_root):
        try:
            _core.unmount(m, detach=True)
        except (DockyardError, OSError):
            pass
    shutil.rmtree(builder_root, ignore_errors=True)


class _Remover(Protocol):
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...


def _table(db: Database) -> None:
    with db.transaction() as c:
        c.execute("CREATE TABLE IF NOT EXISTS build_containers (id TEXT PRIMARY KEY)")


class Inflight:
    def __init__(self, db: Database) -> None:
        self.db = db
        _table(db)

    def add(self, cid: str) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT OR IGNORE INTO build_containers(id) VALUES (?)", (cid,))

    def done(self, cid: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM build_containers WHERE id=?", (cid,))


def sweep(db: Database, containers: _Remover) -> list[str]:
    """Remove the containers of builds a previous daemon did not finish."""
    _table(db)
    ids = [r["id"] for r in db.query("SELECT id FROM build_containers")]
    for cid in ids:
        try:
            containers.remove(cid, force=True)
        except NotFound:
            pass
        with db.transaction() as c:
            c.execute("DELETE FROM build_containers WHERE id=?", (cid,))
    return ids
