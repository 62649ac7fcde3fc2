"""The metadata database's transactions: each commits with the disk sync it
asked for, whatever the one before it asked."""

from __future__ import annotations

from dockyard.store.db import Database

FULL, NORMAL = 2, 1


def test_each_transaction_has_the_sync_it_asked_for(tmp_path):
    db = Database(tmp_path / "d.db")
    try:
        seen = []
        for durable in (True, False, False, True, True, False, True):
            with db.transaction(durable) as c:
                seen.append(c.execute("PRAGMA synchronous").fetchone()[0])
                c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('k', ?)",
                          (str(len(seen)),))
        assert seen == [FULL, NORMAL, NORMAL, FULL, FULL, NORMAL, FULL]
        assert db.get_meta("k") == "7"
        # a durable write after unsynced ones (set_meta is one)
        with db.transaction(durable=False) as c:
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('k', 'x')")
        db.set_meta("k", "y")
        assert db.one("PRAGMA synchronous")[0] == FULL
    finally:
        db.close()
    db = Database(tmp_path / "d.db")
    try:
        assert db.get_meta("k") == "y"
    finally:
        db.close()
