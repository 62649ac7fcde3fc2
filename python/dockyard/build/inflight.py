"""The RUN containers of builds in progress, recorded in the store's
database so that a daemon killed mid-build removes them at its next start
(dockerd's builds leave no container behind either: rm, forcerm, cancel)."""

from __future__ import annotations

from typing import Protocol

from ..errors import NotFound
from ..store.db import Database

__all__ = ["Inflight", "sweep"]


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
