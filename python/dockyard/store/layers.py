"""Layers: the unpacked diffs of images, stored once on the storage driver and
shared by every image whose chain contains them.

A layer is named by its chain ID (the digest of its diff ID and all its
parents'), so two images that share a base share its layers. The storage
driver names its directory by a random cache ID, and the row that maps the
two is written last, in one transaction, after a syncfs has put the layer's
files on disk: a crash or power cut before it leaves only an orphan
directory, which `gc()` removes on the next start.

A pulled layer also keeps its compressed blob as the registry sent it
(`<root>/layerblobs/<hex of its digest>`), and a push the blob it compressed,
so that a push to a registry that lacks it uploads those bytes instead of
compressing the layer again. A cache, not data: written as it streams under
a `.tmp` name, never synced, renamed to its digest once the layer is
committed (or the upload finished) and its `layer_blobs` row written; it
goes with the last layer of its diff ID. A missing or damaged one only costs
a recompression (push checks the bytes as it sends them).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import _core
from ..errors import InvalidParameter, NotFound
from ..graphdriver.base import GraphDriver, sync_filesystems
from ..idmap import IDMap
from ..ids import chain_ids, generate_id
from .db import Database

Extract = Callable[[str, str, str], "_core.LayerInfo"]
"""Extract a diff into (target dir, whiteout mode, tar-split path) and return
what was read; the extractor writes the tar-split record to that path."""
#: dockerd's layer.maxLayerDepth: no chain may be deeper (overlay's mount
#: options would not hold many more lower directories either).
MAX_DEPTH = 125
#: Free space a pull leaves alone when it decides whether to keep a blob.
KEEP_MARGIN = 1 << 30


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    cache_id: str
    size: int


def _row(r) -> Layer:
    return Layer(r["chain_id"], r["diff_id"], r["parent"], r["cache_id"], r["size"])


class LayerStore:
    def __init__(self, db: Database, driver: GraphDriver, root: Path,
                 idmap: IDMap | None = None) -> None:
        self.db = db
        self.driver = driver
        #: --userns-remap: unpacked layers are owned by the remapped IDs.
        self.idmap = idmap
        # Tar-split records (how to rebuild each layer's exact tar), by cache ID.
        self.splits = root / "tarsplit"
        self.splits.mkdir(exist_ok=True, mode=0o700)
        # Compressed blobs as pulled, by digest (a cache: see the module doc).
        self.blobs = root / "layerblobs"
        self.blobs.mkdir(exist_ok=True, mode=0o700)

    def split_path(self, cache_id: str) -> Path:
        return self.splits / cache_id

    def keep_path(self, cache_id: str) -> Path:
        """Where a layer being pulled into `cache_id` keeps its blob until it
        is committed."""
        return self.blobs / f"{cache_id}.tmp"

    def room_to_keep(self, size: int) -> bool:
        """Whether a blob of `size` bytes may be kept: the cache never takes
        the room a layer (some times bigger unpacked) would need."""
        try:
            st = os.statvfs(self.blobs)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize >= KEEP_MARGIN + 4 * max(size, 0)

    def blob_path(self, digest: str) -> Path | None:
        """The kept blob file for `digest` (which may not exist), or None for
        a digest that can't name one."""
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef"
                                                                for c in hexpart):
            return None
        return self.blobs / hexpart

    def push_keep_path(self, cache_id: str) -> Path:
        """Where a push keeps the blob it compresses for the layer in
        `cache_id` (a name of its own: two pushes may compress one layer)."""
        return self.blobs / f"{cache_id}.push-{generate_id()[:12]}.tmp"

    def keep_blob(self, tmp: Path, diff_id: str, digest: str, media_type: str, size: int,
                  registry: str, repository: str) -> None:
        """Record where the blob of a stored layer is (it was pulled or
        pushed), then give its copy in `tmp` (if one was made) its digest's
        name. The row goes first: a blob file no row links to a stored layer
        is a stray."""
        self.record_blob(diff_id, digest, media_type, size, registry, repository)
        dest = self.blob_path(digest)
        try:
            if dest is None or os.stat(tmp).st_size != size:
                tmp.unlink(missing_ok=True)
                return
            os.replace(tmp, dest)
        except FileNotFoundError:
            pass

    def kept_blob(self, diff_id: str) -> tuple[Path, dict] | None:
        """A kept blob of `diff_id` (its path and layer_blobs fields), if any."""
        for b in self.known_blobs(diff_id):
            p = self.blob_path(b["digest"])
            if p is not None and p.exists():
                return p, b
        return None

    def drop_blobs(self, diff_id: str) -> None:
        """Remove the kept blobs of `diff_id` once no layer has that diff."""
        if self.db.one("SELECT 1 FROM layers WHERE diff_id=? LIMIT 1", (diff_id,)):
            return
        for b in self.known_blobs(diff_id):
            p = self.blob_path(b["digest"])
            if p is not None:
                p.unlink(missing_ok=True)

    def stray_blobs(self) -> list[Path]:
        """Kept blob files that no stored layer links to, and temporaries
        (a pull's in progress, or one a crash interrupted)."""
        linked = {r["digest"].partition(":")[2] for r in self.db.query(
            "SELECT DISTINCT b.digest FROM layer_blobs b JOIN layers l ON l.diff_id = b.diff_id")}
        return [p for p in self.blobs.iterdir()
                if p.name.endswith(".tmp") or p.name not in linked]

    def blobs_size(self) -> int:
        """Bytes the kept blobs take."""
        total = 0
        for p in self.blobs.iterdir():
            try:
                total += p.stat().st_size
            except OSError:
                pass
        return total

    def get(self, chain_id: str) -> Layer:
        r = self.db.one("SELECT * FROM layers WHERE chain_id=?", (chain_id,))
        if r is None:
            raise NotFound(f"layer {chain_id} not found")
        return _row(r)

    def find(self, chain_id: str) -> Layer | None:
        r = self.db.one("SELECT * FROM layers WHERE chain_id=?", (chain_id,))
        return _row(r) if r else None

    def chain(self, top: str | None) -> list[Layer]:
        """The layers from the base up to `top`."""
        out: list[Layer] = []
        while top:
            layer = self.get(top)
            out.append(layer)
            top = layer.parent
        out.reverse()
        return out

    def depth(self, chain_id: str) -> int:
        """How many layers the chain ending in `chain_id` has (one query)."""
        r = self.db.one(
            "WITH RECURSIVE up(id, n) AS (SELECT ?, 1 UNION ALL SELECT l.parent, up.n + 1"
            " FROM layers l JOIN up ON l.chain_id = up.id WHERE l.parent IS NOT NULL)"
            " SELECT max(n) FROM up", (chain_id,))
        return int(r[0] or 0)

    def check_depth(self, parent: str | None) -> None:
        """Refuse a layer on `parent` beyond the kernel's overlay stack limit."""
        if parent and self.depth(parent) >= MAX_DEPTH:
            raise InvalidParameter("max depth exceeded")

    def register(self, parent: str | None, extract: Extract) -> Layer:
        """Unpack one diff on top of `parent` and record it.

        `extract` runs the Rust extractor into the new layer's directory. On any
        failure the directory is removed and nothing is recorded.
        """
        parent_layer = self.get(parent) if parent else None
        self.check_depth(parent)
        cache_id = self.prepare(parent_layer.cache_id if parent_layer else None)
        try:
            info = extract(self.driver.diff_path(cache_id), self.driver.whiteouts,
                           str(self.split_path(cache_id)))
        except BaseException:
            self.discard(cache_id)
            raise
        return self.commit(parent, cache_id, info.diff_id, info.size)

    # Registration in steps, for pulls that fill several layers at once:
    # prepare() makes the directory, the caller extracts into diff_path(), and
    # commit() records the row (after the parent's) or discard() drops it all.
    def prepare(self, parent_cache_id: str | None) -> str:
        """Create an empty layer directory on the parent's (by cache ID, which
        may not be committed yet); returns the new cache ID."""
        cache_id = generate_id()
        self.driver.create(cache_id, parent_cache_id)
        return cache_id

    def discard(self, cache_id: str) -> None:
        self.driver.remove(cache_id)
        self.split_path(cache_id).unlink(missing_ok=True)
        self.keep_path(cache_id).unlink(missing_ok=True)

    def commit(self, parent: str | None, cache_id: str, diff_id: str, tar_size: int) -> Layer:
        """Record the layer extracted into `cache_id` on top of `parent` (a
        committed chain ID). If the same chain is stored already, the new copy
        is dropped and the stored one returned."""
        chain_id = chain_ids([parent, diff_id])[-1] if parent else diff_id
        if self.idmap is not None:
            # dockerd chowns as it unpacks; here once the layer is complete.
            _core.shift_ids(self.driver.diff_path(cache_id), self.idmap.ranges())
        split = self.split_path(cache_id)
        # Docker's layer size is what the files hold, not the tar's length.
        size = _core.layer_content_size(str(split)) if split.exists() else tar_size
        if self.find(chain_id) is None:
            # The files reach the disk before the row that names them.
            sync_filesystems(self.driver.home, self.splits)
        existing = None
        with self.db.transaction() as c:
            r = c.execute("SELECT * FROM layers WHERE chain_id=?", (chain_id,)).fetchone()
            if r is not None:
                existing = _row(r)
            else:
                c.execute(
                    "INSERT INTO layers(chain_id, diff_id, parent, cache_id, size, created)"
                    " VALUES (?,?,?,?,?,?)",
                    (chain_id, diff_id, parent, cache_id, size, time.time()),
                )
        if existing is not None:
            # Same content already stored: keep the old copy, drop the new one.
            self.discard(cache_id)
            return existing
        return Layer(chain_id, diff_id, parent, cache_id, size)

    # --- where the layer's blobs live in registries ----------------------------
    def record_blob(self, diff_id: str, digest: str, media_type: str, size: int,
                    registry: str, repository: str) -> None:
        self.record_blobs([(diff_id, digest, media_type, size, registry, repository)])

    def record_blobs(self, rows: list[tuple[str, str, str, int, str, str]]) -> None:
        """record_blob for many, in one transaction: (diff_id, digest,
        media_type, size, registry, repository) each."""
        with self.db.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO layer_blobs VALUES (?,?,?,?,?,?)", rows)

    def known_blobs(self, diff_id: str) -> list[dict]:
        """Blobs seen for `diff_id`: dicts of digest, media_type, size,
        registry, repository."""
        return [dict(r) for r in self.db.query(
            "SELECT digest, media_type, size, registry, repository FROM layer_blobs"
            " WHERE diff_id=?", (diff_id,))]

    def in_use(self, c, chain_id: str) -> bool:
        if c.execute("SELECT 1 FROM images WHERE top_layer=? LIMIT 1", (chain_id,)).fetchone():
            return True
        if c.execute("SELECT 1 FROM layers WHERE parent=? LIMIT 1", (chain_id,)).fetchone():
            return True
        return False

    def release(self, chain_id: str | None) -> int:
        """Remove `chain_id` and then its parents, while nothing else uses them.

        Returns the bytes freed. Rows go first (one transaction each), then the
        directories: a crash in between leaves orphans for `gc()`, never a row
        without its directory.
        """
        freed = 0
        while chain_id:
            with self.db.transaction() as c:
                r = c.execute("SELECT * FROM layers WHERE chain_id=?", (chain_id,)).fetchone()
                if r is None or self.in_use(c, chain_id):
                    return freed
                c.execute("DELETE FROM layers WHERE chain_id=?", (chain_id,))
            layer = _row(r)
            self.driver.remove(layer.cache_id)
            self.split_path(layer.cache_id).unlink(missing_ok=True)
            self.drop_blobs(layer.diff_id)
            freed += layer.size
            chain_id = layer.parent
        return freed

    def gc(self, keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """Remove driver directories and records that no row names (a crash
        between extraction and the row's commit leaves them). `keep` holds the
        container layers that still have a container."""
        known = {r["cache_id"] for r in self.db.query("SELECT cache_id FROM layers")}
        for cache_id in self.driver.list_ids():
            if cache_id not in known and cache_id not in keep:
                self.driver.remove(cache_id)
        for p in self.splits.iterdir():
            if p.name not in known:
                p.unlink(missing_ok=True)
        for p in self.stray_blobs():
            p.unlink(missing_ok=True)

    def total_size(self) -> int:
        r = self.db.one("SELECT COALESCE(SUM(size), 0) AS s FROM layers")
        return int(r["s"]) if r else 0

    def write_layer_tar(self, chain_id: str, dest: str | int, compression: str = "none",
                        level: int | None = None):
        """Write the layer's exact original tar (its diff ID is the recorded
        one), compressed or not, to a path or fd; returns its LayerInfo."""
        layer = self.get(chain_id)
        split = self.split_path(layer.cache_id)
        if split.exists():
            return _core.assemble_layer(str(split), self.driver.diff_path(layer.cache_id), dest,
                                        compression, level)
        # No record (a layer made by commit): the driver's diff is the original.
        parent = self.get(layer.parent).cache_id if layer.parent else None
        return self.driver.diff(layer.cache_id, parent, dest, compression)
