"""The metadata database: one SQLite file in WAL mode under the data root.

Every multi-step change runs inside `Database.transaction()`, so a kill -9 or
a power cut at any point leaves either the old state or the new one, and a
transaction that returned is on disk (docs/durability.md). Counts that could drift
(layer references) are not stored: they are derived by queries when needed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..graphdriver.base import fsync_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    chain_id        TEXT PRIMARY KEY,
    diff_id         TEXT NOT NULL,
    parent          TEXT REFERENCES layers(chain_id),
    cache_id        TEXT NOT NULL UNIQUE,  -- the storage driver's layer id
    size            INTEGER NOT NULL,      -- bytes of the uncompressed diff
    created         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS layers_parent ON layers(parent);

CREATE TABLE IF NOT EXISTS images (
    id              TEXT PRIMARY KEY,      -- sha256:<hex of config bytes>
    config          BLOB NOT NULL,         -- the exact config JSON bytes
    top_layer       TEXT REFERENCES layers(chain_id),
    parent          TEXT,                  -- parent image id (commit/import chains)
    created         TEXT NOT NULL,
    last_tag_time   TEXT
);
CREATE INDEX IF NOT EXISTS images_top ON images(top_layer);

-- Repository references: a normalized name with a tag or a digest.
CREATE TABLE IF NOT EXISTS refs (
    ref             TEXT PRIMARY KEY,      -- docker.io/library/busybox:latest
    image_id        TEXT NOT NULL REFERENCES images(id),
    created         REAL NOT NULL          -- keeps RepoTags in tagging order
);
CREATE INDEX IF NOT EXISTS refs_image ON refs(image_id);

-- Containers: their Docker Config/HostConfig and last known State, as JSON.
-- Whether a container runs is decided by its supervisor (the shim's files),
-- the State here is what the daemon last saw (and reconciles at start-up).
CREATE TABLE IF NOT EXISTS containers (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,  -- with docker's leading "/"
    image_id        TEXT NOT NULL,
    created         TEXT NOT NULL,
    config          TEXT NOT NULL,
    hostconfig      TEXT NOT NULL,
    state           TEXT NOT NULL,
    restart_count   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);

-- Where a layer's compressed blob is known to live (docker's v2 metadata):
-- push skips blobs a registry has and mounts them across repositories.
CREATE TABLE IF NOT EXISTS layer_blobs (
    diff_id         TEXT NOT NULL,
    digest          TEXT NOT NULL,         -- the compressed blob's digest
    media_type      TEXT NOT NULL,
    size            INTEGER NOT NULL,
    registry        TEXT NOT NULL,         -- domain, e.g. docker.io or 127.0.0.1:5000
    repository      TEXT NOT NULL,         -- path within it, e.g. library/busybox
    PRIMARY KEY (diff_id, digest, registry, repository)
);
CREATE INDEX IF NOT EXISTS layer_blobs_diff ON layer_blobs(diff_id);

CREATE TABLE IF NOT EXISTS meta (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL
);
"""


#: Space held back (a preallocated file beside the database) for the records
#: of a daemon whose filesystem a container or a build step filled up.
DB_RESERVE = 4 << 20
SQLITE_FULL = 13
#: Free pages (and WAL) kept before they are handed back to the filesystem.
RECLAIM_AT = 16 << 20


def _disk_full(e: BaseException) -> bool:
    return (isinstance(e, sqlite3.OperationalError)
            and (getattr(e, "sqlite_errorcode", 0) & 0xFF) == SQLITE_FULL)


class Database:
    """A thread-safe wrapper: one connection, serialized by a lock.

    The daemon calls the store from worker threads (the Rust core releases the
    GIL while it extracts), so writes are serialized here rather than relying
    on SQLite's busy handling.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._reserve = path.with_name(path.name + ".reserve")
        self._reserve_held = False
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL fsyncs the WAL at every commit: a transaction that returned
        # survives a power cut, not only a kill -9 (NORMAL's promise).
        self._conn.execute("PRAGMA synchronous=FULL")
        self._synced = True  # the setting now; only `transaction` writes
        self._conn.execute("PRAGMA foreign_keys=ON")
        # The space of deleted rows can go back to the filesystem (`reclaim`):
        # a container made with a 100 MB body and removed leaves nothing.
        # An older database is rebuilt once to take the setting.
        if self._conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            self._conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._conn.execute("VACUUM")
        self._conn.execute(f"PRAGMA journal_size_limit={RECLAIM_AT}")
        self._page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
        self._conn.executescript(SCHEMA)
        # SQLite syncs the WAL's directory entry when it makes the WAL, not
        # the database file's own.
        fsync_dir(path.parent)

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. `durable=False` skips the WAL's fsync at
        commit (SQLite's NORMAL): the change survives a kill -9 at once, and a
        power cut once the next durable commit (whose fsync covers every frame
        before it) or a checkpoint has run; for state a power cut makes stale
        anyway: a container's running or exited state, a pod marked ready."""
        with self._lock:
            self._mind_reserve()
            # Set when it changes: a start's or an exit's records, several
            # unsynced transactions in a row, pay for one switch, not two each.
            if durable != self._synced:
                self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._synced = durable
            with self._transaction() as conn:
                yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException as e:
                if _disk_full(e):
                    self._release_reserve()
                self._rollback()
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as e:
                if not _disk_full(e):
                    self._rollback()
                    raise
                # The disk filled up (a container, a build step): the space
                # held back for this lets the record be written, so that what
                # was done (a container stopped, removed) is not forgotten.
                self._release_reserve()
                if not self._conn.in_transaction:
                    raise  # SQLite rolled it back: the operation fails whole
                try:
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _mind_reserve(self) -> None:
        """Keep DB_RESERVE bytes allocated next to the database while the
        filesystem has room; hand them back (before writing: SQLite may roll
        a transaction back when its commit finds the disk full) once it
        hasn't."""
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        if self._reserve_held and free < DB_RESERVE // 2:
            self._release_reserve()
        elif not self._reserve_held and free >= 4 * DB_RESERVE:
            self._hold_reserve()

    def _hold_reserve(self) -> None:
        try:
            fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, DB_RESERVE)
            finally:
                os.close(fd)
            self._reserve_held = True
        except OSError:
            pass

    def _release_reserve(self) -> None:
        try:
            os.unlink(self._reserve)
        except OSError:
            pass
        self._reserve_held = False

    def reclaim(self) -> None:
        """Give the pages of deleted rows back to the filesystem once they add
        up to RECLAIM_AT (after a big record went), and the WAL's too."""
        with self._lock:
            free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
            if free * self._page_size >= RECLAIM_AT:
                # one page a step, and execute() steps once: a script runs it out
                self._conn.executescript("PRAGMA incremental_vacuum;")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def get_meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key=?", (key,))
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
