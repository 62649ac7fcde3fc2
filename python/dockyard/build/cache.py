"""The classic builder's cache as an index: a step hits when an image whose
parent is the current image was built from the same step config (dockerd
compares the candidate's container_config with the step's; the key here is
a digest of that config, so the lookup is one indexed query and never a
mount). Rows whose image is gone are ignored (the join) and swept by
`prune`."""

from __future__ import annotations

import hashlib
import time
import json
from typing import Any

from ..store.db import Database

__all__ = ["BuildCache", "step_key"]

# dockerd's cache compare ignores the hostname and the image (the parent is
# the other half of the key) and the healthcheck (which a step's container
# create fills from the image's, and a cache hit does not).
_IGNORED = ("Hostname", "Image", "Healthcheck")


def step_key(probe_config: dict[str, Any], platform: str = "linux/amd64") -> str:
    cfg = {k: v for k, v in probe_config.items() if k not in _IGNORED}
    # Empty and absent compare equal, as in dockerd's compare.
    cfg = {k: v for k, v in cfg.items() if v not in (None, "", [], {}, False)}
    blob = json.dumps([platform, cfg], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class BuildCache:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as c:
            c.execute("CREATE TABLE IF NOT EXISTS build_cache ("
                      " parent TEXT NOT NULL, key TEXT NOT NULL, image_id TEXT NOT NULL,"
                      " created REAL NOT NULL DEFAULT 0, PRIMARY KEY (parent, key))")

    def lookup(self, parent: str, key: str) -> str | None:
        r = self.db.one("SELECT b.image_id FROM build_cache b JOIN images i ON i.id = b.image_id"
                        " WHERE b.parent=? AND b.key=?", (parent, key))
        return r["image_id"] if r else None

    def record(self, parent: str, key: str, image_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT OR REPLACE INTO build_cache(parent, key, image_id, created)"
                      " VALUES (?,?,?,?)", (parent, key, image_id, time.time()))

    def prune(self) -> int:
        """Drop rows whose image was deleted; returns how many."""
        with self.db.transaction() as c:
            cur = c.execute("DELETE FROM build_cache WHERE image_id NOT IN (SELECT id FROM images)")
            return cur.rowcount
