"""Images and their repository references.

An image is its config JSON (its ID is the SHA-256 of those exact bytes) plus
the chain of layers the config's `rootfs.diff_ids` name. References map a
normalized name with a tag or digest to an image ID.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from .. import reference
from ..errors import AmbiguousPrefix, Conflict, ImageNotFound, InvalidReference
from ..ids import chain_ids, image_id as compute_image_id, truncate_id
from ..imageconfig import now_rfc3339, parse_time
from .db import Database
from .layers import LayerStore

_HEX = re.compile(r"^[a-f0-9]{1,64}$")


@dataclass
class Image:
    id: str
    config: dict[str, Any]
    raw: bytes
    top_layer: str | None
    parent: str
    created: str
    last_tag_time: str | None
    refs: list[str] = field(default_factory=list)

    @property
    def repo_tags(self) -> list[str]:
        # dockerd's reference store lists them in lexical order
        return sorted(reference.familiar_string(r) for r in self.refs if "@" not in r)

    @property
    def repo_digests(self) -> list[str]:
        return sorted(reference.familiar_string(r) for r in self.refs if "@" in r)

    @property
    def created_unix(self) -> int:
        return int(parse_time(self.config.get("created", "")))


class ImageStore:
    def __init__(self, db: Database, layers: LayerStore) -> None:
        self.db = db
        self.layers = layers

    # --- lookup -------------------------------------------------------------
    def _load(self, row) -> Image:
        refs = [r["ref"] for r in self.db.query(
            "SELECT ref FROM refs WHERE image_id=? ORDER BY created, ref", (row["id"],))]
        return Image(row["id"], json.loads(row["config"]), bytes(row["config"]),
                     row["top_layer"], row["parent"] or "", row["created"],
                     row["last_tag_time"], refs)

    def get(self, image_id: str) -> Image:
        row = self.db.one("SELECT * FROM images WHERE id=?", (image_id,))
        if row is None:
            raise ImageNotFound(f"No such image: {image_id}")
        return self._load(row)

    def all(self) -> list[Image]:
        return [self._load(r) for r in self.db.query("SELECT * FROM images")]

    def resolve(self, name: str) -> Image:
        """Find an image by reference, full ID or unique ID prefix (docker's order)."""
        name = name.strip()
        if not name:
            raise ImageNotFound("No such image: ")
        s = name[len("sha256:"):] if name.startswith("sha256:") else None
        if s is not None and _HEX.match(s):
            return self._by_prefix(s, name)
        ref = None
        try:
            ref = reference.parse_docker_ref(name)
        except InvalidReference:
            if not _HEX.match(name):
                raise
        if ref is not None:
            row = self.db.one("SELECT image_id FROM refs WHERE ref=?", (str(ref),))
            if row is not None:
                return self.get(row["image_id"])
        if _HEX.match(name):
            try:
                return self._by_prefix(name, name)
            except ImageNotFound:
                pass
        shown = str(reference.familiar_string(str(ref))) if ref is not None else name
        raise ImageNotFound(f"No such image: {shown}")

    def _by_prefix(self, prefix: str, shown: str) -> Image:
        rows = self.db.query("SELECT id FROM images WHERE id LIKE ?", (f"sha256:{prefix}%",))
        if not rows:
            raise ImageNotFound(f"No such image: {shown}")
        if len(rows) > 1:
            raise AmbiguousPrefix(f"multiple IDs found with provided prefix: {prefix}")
        return self.get(rows[0]["id"])

    # --- create -------------------------------------------------------------
    def create(self, raw_config: bytes, parent: str = "", refs: Iterable[str] = ()) -> Image:
        """Record an image whose layers are all registered already, and point
        `refs` (normalized) at it in the same transaction: an operation a
        crash cuts short leaves no untagged image behind."""
        config = json.loads(raw_config)
        diff_ids = config.get("rootfs", {}).get("diff_ids") or []
        top = chain_ids(diff_ids)[-1] if diff_ids else None
        if top is not None:
            self.layers.get(top)
        iid = compute_image_id(raw_config)
        with self.db.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO images(id, config, top_layer, parent, created)"
                " VALUES (?,?,?,?,?)",
                (iid, raw_config, top, parent or None, config.get("created", "")),
            )
            for ref in refs:
                self._tag(c, iid, ref)
        return self.get(iid)

    # --- references ---------------------------------------------------------
    def tag(self, image_id: str, ref: str) -> None:
        """Point `ref` (normalized, with tag or digest) at the image."""
        with self.db.transaction() as c:
            self._tag(c, image_id, ref)

    @staticmethod
    def _tag(c, image_id: str, ref: str) -> None:
        c.execute("INSERT OR REPLACE INTO refs(ref, image_id, created) VALUES (?,?,?)",
                  (ref, image_id, time.time()))
        c.execute("UPDATE images SET last_tag_time=? WHERE id=?", (now_rfc3339(), image_id))

    # --- delete -------------------------------------------------------------
    def children(self, image_id: str) -> list[str]:
        return [r["id"] for r in self.db.query("SELECT id FROM images WHERE parent=?", (image_id,))]

    def delete(self, name: str, force: bool = False, prune: bool = True,
               users: dict[str, list[tuple[str, bool]]] | None = None) -> list[dict[str, str]]:
        """`docker rmi`: untag by reference, or delete by ID, with Docker's conflicts.

        `users` maps image IDs to the containers using them as (id, running).
        """
        users = users or {}
        img = self.resolve(name)
        out: list[dict[str, str]] = []
        ref = self._is_reference_lookup(name, img)
        quiet = False
        if ref is not None:
            if not force and self._single_reference(img.refs) and users.get(img.id):
                cid = users[img.id][0][0]
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - '
                    f"container {truncate_id(cid)} is using its referenced image "
                    f"{truncate_id(img.id)}")
            self.untag(ref)
            out.append({"Untagged": reference.familiar_string(ref)})
            img.refs.remove(ref)
            if "@" not in ref:
                # A removed tag takes the same repository's digest references
                # with it when no other tag of that repository is left.
                repo = self._repo_of(ref)
                if not any("@" not in r and self._repo_of(r) == repo for r in img.refs):
                    for r in [r for r in img.refs if "@" in r and self._repo_of(r) == repo]:
                        self.untag(r)
                        out.append({"Untagged": reference.familiar_string(r)})
                        img.refs.remove(r)
            if img.refs:
                return out
            quiet = True
        elif self._single_reference(img.refs):
            self._check_conflicts(img, force, users, refs=False)
            for r in list(img.refs):
                self.untag(r)
                out.append({"Untagged": reference.familiar_string(r)})
            img.refs = []
        try:
            self._check_conflicts(img, force, users, refs=True)
        except Conflict:
            if quiet:
                return out
            raise
        for r in list(img.refs):
            self.untag(r)
            out.append({"Untagged": reference.familiar_string(r)})
        out.extend(self.delete_chain(img.id, prune, users))
        return out

    @classmethod
    def _single_reference(cls, refs: list[str]) -> bool:
        """At most one tag, and every reference in one repository."""
        tags = [r for r in refs if "@" not in r]
        return len(tags) <= 1 and len({cls._repo_of(r) for r in refs}) <= 1

    @staticmethod
    def _repo_of(ref: str) -> str:
        if "@" in ref:
            return ref.split("@", 1)[0]
        return ref.rsplit(":", 1)[0]

    def _is_reference_lookup(self, name: str, img: Image) -> str | None:
        try:
            ref = str(reference.parse_docker_ref(name))
        except InvalidReference:
            return None
        return ref if ref in img.refs else None

    def _check_conflicts(self, img: Image, force: bool,
                         users: dict[str, list[tuple[str, bool]]], refs: bool) -> None:
        short = truncate_id(img.id)
        if self.children(img.id):
            raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image has "
                           "dependent child images")
        for cid, running in users.get(img.id, []):
            if running:
                raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image is "
                               f"being used by running container {truncate_id(cid)}")
        if force:
            return
        if refs and img.refs:
            raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is "
                           "referenced in multiple repositories")
        for cid, _running in users.get(img.id, []):
            raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is "
                           f"being used by stopped container {truncate_id(cid)}")

    def untag(self, ref: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM refs WHERE ref=?", (ref,))

    def delete_chain(self, image_id: str, prune: bool,
                     users: dict[str, list[tuple[str, bool]]]) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        while image_id:
            if users.get(image_id):
                break
            with self.db.transaction() as c:
                row = c.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
                if row is None:
                    break
                c.execute("DELETE FROM images WHERE id=?", (image_id,))
            out.append({"Deleted": image_id})
            self.layers.release(row["top_layer"])
            parent = row["parent"]
            if not prune or not parent:
                break
            if self.children(parent) or self.db.one(
                    "SELECT 1 FROM refs WHERE image_id=?", (parent,)):
                break
            image_id = parent
        return out

    def untag_all(self, image_id: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM refs WHERE image_id=?", (image_id,))

    # --- sizes --------------------------------------------------------------
    def size(self, img: Image) -> int:
        return sum(layer.size for layer in self.layers.chain(img.top_layer))

    def layer_users(self) -> dict[str, int]:
        """How many images use each layer (for SharedSize)."""
        counts: dict[str, int] = {}
        for img in self.db.query("SELECT top_layer FROM images"):
            for layer in self.layers.chain(img["top_layer"]):
                counts[layer.chain_id] = counts.get(layer.chain_id, 0) + 1
        return counts
