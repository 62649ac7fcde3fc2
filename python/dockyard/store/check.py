"""The store's consistency check (`dockyard system check`): every layer's
directory is there and its files still make the diff ID it was recorded
with, every layer's parent and every image's layers exist, image IDs are the
digests of their configs, and no layer directory, tar-split record or kept
blob belongs to nothing. Read-only; `repair` removes only what belongs to nothing (what a
crash between writing and recording leaves), never data something uses;
what is younger than an hour is not reported (an operation in progress may
be filling it)."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..ids import chain_ids
from .local import LocalStore

__all__ = ["Problem", "check_store"]


@dataclass
class Problem:
    kind: str            # "layer", "image", "container", "volume"
    id: str
    problem: str
    repairable: bool = False
    repaired: bool = False

    def as_json(self) -> dict[str, object]:
        return {"Kind": self.kind, "ID": self.id, "Problem": self.problem,
                "Repairable": self.repairable, "Repaired": self.repaired}


# What an operation in progress may hold before recording it is left alone
# for this long (a pull extracts into a layer directory, then records it).
IN_PROGRESS_GRACE = 3600.0


def _young(p: Path, grace: float) -> bool:
    try:
        return time.time() - os.lstat(p).st_mtime < grace
    except OSError:
        return False


def check_store(store: LocalStore, keep: set[str], verify: bool = True,
                repair: bool = False, grace: float = IN_PROGRESS_GRACE) -> list[Problem]:
    """Problems of the image store. `keep`: driver IDs of container layers
    (not image layers, yet not orphans); `verify`: rebuild every layer's tar
    from its files and compare its digest (reads everything); `grace`:
    seconds an unrecorded directory may be an operation's in progress."""
    out: list[Problem] = []
    rows = {r["chain_id"]: r for r in store.db.query("SELECT * FROM layers")}
    for chain_id, r in rows.items():
        cache_id = r["cache_id"]
        parent = r["parent"]
        if parent and parent not in rows:
            out.append(Problem("layer", chain_id, f"its parent layer {parent} is not recorded"))
        want = chain_ids([parent, r["diff_id"]])[-1] if parent else r["diff_id"]
        if want != chain_id:
            out.append(Problem("layer", chain_id, f"its chain ID should be {want}"))
        if not store.driver.exists(cache_id):
            out.append(Problem("layer", chain_id, f"its directory ({cache_id}) is missing"))
            continue
        if verify and (not parent or parent in rows):
            try:
                with open(os.devnull, "wb") as null:
                    got = store.layers.write_layer_tar(chain_id, null.fileno()).diff_id
            except Exception as e:  # noqa: BLE001 - anything unreadable is the finding
                out.append(Problem("layer", chain_id, f"its files can't be read back: {e}"))
                continue
            if got != r["diff_id"]:
                out.append(Problem("layer", chain_id,
                                   f"its files make {got}, not the recorded {r['diff_id']}"))
    for img in store.images.all():
        if "sha256:" + hashlib.sha256(img.raw).hexdigest() != img.id:
            out.append(Problem("image", img.id, "its config does not hash to its ID"))
        diff_ids = (img.config.get("rootfs") or {}).get("diff_ids") or []
        if img.top_layer and img.top_layer not in rows:
            out.append(Problem("image", img.id, f"its top layer {img.top_layer} is not recorded"))
        elif (chain_ids(diff_ids)[-1] if diff_ids else None) != img.top_layer:
            out.append(Problem("image", img.id, "its layers are not its config's diff IDs"))
    known = {r["cache_id"] for r in rows.values()}
    for cache_id in store.driver.list_ids():
        if cache_id in known or cache_id in keep:
            continue
        if _young(Path(store.driver.diff_path(cache_id)), grace):
            continue  # a pull or build may be filling it before recording it
        p = Problem("layer", cache_id, "a layer directory that belongs to nothing", True)
        if repair:
            store.driver.remove(cache_id)
            p.repaired = True
        out.append(p)
    for split in store.layers.splits.iterdir():
        if split.name in known or split.name.endswith(".tmp") or _young(split, grace):
            continue
        p = Problem("layer", split.name, "a tar-split record that belongs to nothing", True)
        if repair:
            split.unlink(missing_ok=True)
            p.repaired = True
        out.append(p)
    # Kept blobs are a cache (a damaged one only costs push a recompression):
    # their contents are not checked, only that a layer still wants them.
    for blob in store.layers.stray_blobs():
        if _young(blob, grace):
            continue
        p = Problem("layer", blob.name, "a kept layer blob that belongs to nothing", True)
        if repair:
            blob.unlink(missing_ok=True)
            p.repaired = True
        out.append(p)
    return out
